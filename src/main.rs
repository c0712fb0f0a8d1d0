//! The `tandem` binary: parse arguments, run the command, exit with its code.
use clap::Parser;

fn main() {
    quiet_on_closed_stdout();
    let cli = tandem::cli::args::Cli::parse();
    std::process::exit(tandem::cli::run(cli));
}

/// Rust ignores SIGPIPE, so printing into a closed pipe (`tandem plan F |
/// head -1`) makes `println!` panic. A command-line tool should end quietly
/// instead, as `cat` does: with SIGPIPE's default action the process exits
/// (status 141) at the first write after the reader is gone. Nothing is lost:
/// cache entries are only ever renamed into place complete.
fn quiet_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL
    // is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
