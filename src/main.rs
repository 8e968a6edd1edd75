//! Command-line entry point; everything lives in the library (`inboxgate::cli`).

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    inboxgate::cli::main()
}
