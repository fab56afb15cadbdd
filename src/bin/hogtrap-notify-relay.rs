//! The desktop notification relay: started by the daemon as the desktop's user, it sends
//! one notification read from stdin to that user's session bus. See `hogtrap::alert::desktop`.

fn main() -> std::process::ExitCode {
    hogtrap::alert::relay_main()
}
