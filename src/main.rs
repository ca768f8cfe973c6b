//! The `strata` command: parses arguments and prints; the library does the work.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
