//! Command-line entry point; everything lives in the library (`inboxgate::cli`).

fn main() -> std::process::ExitCode {
    inboxgate::cli::main()
}
