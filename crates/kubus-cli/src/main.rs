//! The `kubus` binary: hands the process arguments and streams to `kubus_cli::run`.

fn main() -> std::process::ExitCode {
    kubus_cli::run(std::env::args(), &mut std::io::stdout().lock(), &mut std::io::stderr().lock())
}
