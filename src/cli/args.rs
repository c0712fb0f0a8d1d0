//! The command line, as clap sees it. `main` turns these raw arguments into
//! a validated [`crate::cli::Config`] once, and commands only read that.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "tandem",
    version,
    about = "A declarative lab for preference-optimization experiments",
    long_about = "tandem reads .exp files describing worlds, datasets, models, training runs, \
evaluations and figures, turns them into a graph of content-keyed stages, and computes only \
the stages that are not already in its cache.\n\nStart with `tandem check FILE` and `tandem plan FILE`.",
    after_help = "Docs: README.md and docs/ (language.md: the language; running.md: runs, results, the cache) in the tandem repository."
)]
pub struct Cli {
    /// Sets a `let` constant or a declaration's argument for this command, as
    /// if the file said so: `--set steps=20`, `--set online.loss.beta=0.05`.
    /// Repeatable. With `diff`, applies to B.
    #[arg(long = "set", global = true, value_name = "PATH=VALUE", action = clap::ArgAction::Append)]
    pub set: Vec<String>,
    /// The cache folder (content-addressed entries live under objects/).
    #[arg(long, global = true, env = "TANDEM_CACHE", default_value = "cache", value_name = "DIR")]
    pub cache: PathBuf,

    /// When to color output.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,

    /// How libtorch computes: `portable` gives the same bytes on every x86-64
    /// host with AVX2 and at any --threads; `native` uses this host's fastest
    /// kernels (bytes may differ between hosts); `cuda` runs on the GPU. The
    /// profile is part of every model, run and evaluation key.
    #[arg(long, global = true, value_enum, env = "TANDEM_NUMERICS", default_value_t = NumericsArg::Portable)]
    pub numerics: NumericsArg,

    /// The most instances one declaration's sweep may expand to (a number as
    /// the language writes it: 100000, 100k, 1e5).
    #[arg(long, global = true, default_value_t = 100_000, value_name = "N", value_parser = count)]
    pub max_sweep: usize,

    /// The most nodes a plan may have: runs count one per checkpoint used,
    /// evaluations one per policy and step (a number as the language writes
    /// it: 1M, 2e6).
    #[arg(long, global = true, default_value_t = 1_000_000, value_name = "N", value_parser = count)]
    pub max_nodes: usize,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    Cpu,
    Cuda,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NumericsArg {
    Portable,
    Native,
    Cuda,
}

impl NumericsArg {
    pub fn profile(self) -> crate::plan::op::Numerics {
        use crate::plan::op::Numerics;
        match self {
            NumericsArg::Portable => Numerics::Portable,
            NumericsArg::Native => Numerics::Native,
            NumericsArg::Cuda => Numerics::Cuda,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecutorArg {
    Local,
    Slurm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check .exp files and report every problem, with where it is and how to fix it.
    Check {
        /// One or more .exp files (each is checked with its imports).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// `json`: one document on stdout with every file's problems, each
        /// with its code, severity, message, help and places (file, line,
        /// column, end), for editors and CI annotations.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show the graph of stages an experiment needs: key, kind, names, inputs, cached or missing.
    Plan {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Machine-readable output (shape documented in docs/running.md).
        #[arg(long, conflicts_with = "dot")]
        json: bool,
        /// Graphviz output.
        #[arg(long)]
        dot: bool,
    },
    /// Compare two experiments by hash: what only one has, what they share, and why keys differ.
    Diff {
        #[arg(value_name = "A")]
        a: PathBuf,
        #[arg(value_name = "B")]
        b: PathBuf,
        /// Machine-readable output (shape documented in docs/running.md).
        #[arg(long)]
        json: bool,
    },
    /// Show a cache entry's manifest and lineage: by key prefix, or by a
    /// study file and a name as its plan prints it (`study.exp online@40`).
    Show {
        #[arg(value_name = "KEY-PREFIX | FILE NAME", num_args = 1..=2, required = true)]
        target: Vec<String>,
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compute every missing stage of an experiment, then write its results.
    Run {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Only these declarations (and what they need).
        #[arg(long, value_name = "NAME", num_args = 1..)]
        only: Vec<String>,
        /// Nodes computed at the same time (default: cores ÷ threads).
        #[arg(long, short = 'j', value_name = "N")]
        jobs: Option<usize>,
        /// libtorch threads per node (default 1). Results are bit-identical
        /// between runs with the same thread count, whatever the job count.
        #[arg(long, value_name = "T")]
        threads: Option<i32>,
        /// Where models run.
        #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
        device: DeviceArg,
        /// List what would be computed, compute nothing.
        #[arg(long)]
        dry_run: bool,
        /// Where results (tables, figures, report) are written.
        #[arg(long, default_value = "results", value_name = "DIR")]
        results: PathBuf,
        /// Where nodes are computed: here, or as one Slurm job each
        /// (default: the profile's `executor`, else local).
        #[arg(long, value_enum)]
        executor: Option<ExecutorArg>,
        /// Settings file (default: tandem.toml beside FILE, if there is one).
        #[arg(long, value_name = "TOML")]
        profile: Option<PathBuf>,
        /// Seconds of computation between saves of a training node's state,
        /// so that a kill loses about that much (0: save only when stopped
        /// by a signal). Saves are spaced further where one costs more than
        /// 2% of the interval. Changes no result.
        #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = seconds)]
        snapshot_every: f64,
        /// Also write every training curve and evaluation as TensorBoard
        /// event files, in DIR/<study>/<run> (`tensorboard --logdir DIR`).
        #[arg(long, value_name = "DIR")]
        tensorboard: Option<PathBuf>,
    },
    /// Compute one node a Slurm driver wrote into the cache (what each job runs).
    #[command(name = "exec-node")]
    ExecNode {
        #[arg(value_name = "KEY")]
        key: String,
        /// libtorch threads.
        #[arg(long, value_name = "T", default_value_t = 1)]
        threads: i32,
        #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
        device: DeviceArg,
        /// As for `run`.
        #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = seconds)]
        snapshot_every: f64,
    },
    /// Write a dataset entry (or an online run's data stream) as JSONL: prompt, chosen, rejected;
    /// or a policy trained from a pretrained model as a Hugging Face directory.
    /// The entry is named by key prefix, or by a study file and a name as
    /// its plan prints it (`tandem export study.exp online[seed=1]@200 OUT`;
    /// a run's name means its last checkpoint).
    Export {
        /// KEY-PREFIX OUT, or FILE NAME OUT.
        #[arg(value_name = "KEY-PREFIX | FILE NAME, OUT", num_args = 2..=3, required = true)]
        args: Vec<String>,
    },
    /// Check every cache entry against its blake3 digests.
    Verify {
        /// Remove corrupt entries (a later `run` recomputes them).
        #[arg(long)]
        evict: bool,
    },
    /// Remove cache entries that no kept experiment reaches (a dry run unless --delete).
    Gc {
        /// Experiments whose stages are kept.
        #[arg(long, value_name = "FILE", num_args = 1..)]
        keep: Vec<PathBuf>,
        /// Actually remove them.
        #[arg(long)]
        delete: bool,
        /// Also remove the kept experiments' own entries computed under
        /// another numerics profile (kept and listed otherwise).
        #[arg(long)]
        other_profiles: bool,
    },
    /// Report the libtorch this binary uses: version, threads, CUDA.
    Env,
    /// Write a starter study into DIR (created if missing): online against
    /// offline IPO on a synthetic world, about half a minute on two cores.
    Init {
        #[arg(value_name = "DIR", default_value = ".")]
        dir: PathBuf,
    },
    /// Print a completion script for a shell: `tandem completions bash >
    /// ~/.local/share/bash-completion/completions/tandem`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Read a pretrained Hugging Face model directory (GPT-2, Llama, Qwen2):
    /// its architecture, size and content digest; score texts with it.
    Pretrained {
        /// The directory: config.json, *.safetensors, tokenizer.json.
        dir: PathBuf,
        /// Texts to score: tokens and log-probability under the model.
        #[arg(long, value_name = "TEXT")]
        text: Vec<String>,
        /// Also continue each text greedily by this many tokens.
        #[arg(long, value_name = "N", default_value_t = 0)]
        generate: usize,
    },
}

/// A duration in seconds: a finite number ≥ 0.
fn seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{text}` is not a number of seconds (a number ≥ 0)")),
    }
}

/// A positive whole number written as the language writes numbers (`1e6`,
/// `100k`, `2M`), so a flag accepts what an .exp file would.
fn count(text: &str) -> Result<usize, String> {
    let n = crate::syntax::number::Number::parse(text).map_err(|_| format!("`{text}` is not a number"))?;
    match n.as_i64() {
        Some(v) if v >= 1 => usize::try_from(v).map_err(|_| format!("`{text}` is too large")),
        Some(_) => Err(format!("`{text}` must be at least 1")),
        None if n.is_integral() => Err(format!("`{text}` is too large")),
        None => Err(format!("`{text}` is not a whole number")),
    }
}
