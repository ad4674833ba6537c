fn main() {
    std::process::exit(splitflow::cli::main());
}
