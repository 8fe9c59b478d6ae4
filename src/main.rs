//! The `genro-storage` command: everything is in the library's `cli` module.

fn main() -> std::process::ExitCode {
    genro_storage::cli::main()
}
