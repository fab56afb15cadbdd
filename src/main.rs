fn main() -> std::process::ExitCode {
    // The desktop notification relay (see hogtrap::alert::desktop) runs before anything
    // else: no argument parsing, no logging, no runtime of the daemon's.
    if std::env::args_os().nth(1).as_deref() == Some(hogtrap::alert::RELAY_SUBCOMMAND.as_ref()) {
        return hogtrap::alert::relay_main();
    }
    hogtrap::cli::main()
}
