fn main() {
    splitflow::tune_allocator();
    splitflow::quiet_broken_pipe();
    std::process::exit(splitflow::cli::main());
}
