//! The `kubus` binary: hands the process arguments and streams to `kubus_cli::run`. The streams are not locked for
//! the whole run: `kubus serve` logs to standard error from its worker threads.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    kubus_cli::run(std::env::args(), &mut std::io::stdout(), &mut std::io::stderr())
}
