//! Wires the two front doors together: the command line (`cli`) and the recorder (`daemon`).
//! Nothing else may use both.

use hogtrap::cli::{self, Command, Ctx};

fn main() -> std::process::ExitCode {
    // The desktop notification relay (see hogtrap::alert::desktop) runs before anything
    // else: no argument parsing, no logging, no runtime of the daemon's.
    if std::env::args_os().nth(1).as_deref() == Some(hogtrap::alert::RELAY_SUBCOMMAND.as_ref()) {
        return hogtrap::alert::relay_main();
    }
    let cli = cli::parse();
    let result = match cli.command {
        Command::Run => hogtrap::daemon::run(cli.config),
        Command::Cli(command) => cli::run(&Ctx::new(cli.config, cli.db), command),
    };
    cli::exit_code(result)
}
