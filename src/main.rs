fn main() -> std::process::ExitCode {
    dbvigil::cli::main()
}
