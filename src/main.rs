fn main() {
    splitflow::tune_allocator();
    std::process::exit(splitflow::cli::main());
}
