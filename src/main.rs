//! The `tandem` binary: parse arguments, run the command, exit with its code.
use clap::Parser;

fn main() {
    let cli = tandem::cli::args::Cli::parse();
    std::process::exit(tandem::cli::run(cli));
}
