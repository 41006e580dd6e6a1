fn main() -> std::process::ExitCode {
    rrct::cli::main()
}
