fn main() -> std::process::ExitCode {
    hogtrap::cli::main()
}
