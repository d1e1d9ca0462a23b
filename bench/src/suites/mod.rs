//! The CPU benchmark suites of `cargo xtask bench`. Each suite checks its outputs against a
//! reference first, then times ragtune and the peers the issue names on the same data, and
//! returns one [`Row`] per shape. A peer that cannot run here (no Python, no FAISS wheel) is left
//! out with a note in the report rather than failing the run.

pub mod attention;
pub mod embed;
pub mod gemm;
pub mod generate;
pub mod lora;
pub mod lora_backward;
pub mod topk;
pub mod train;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::harness::{Budget, threads};
use crate::report::{Ceilings, Row};

/// The PyTorch stack's peer script (bench/torch_peer.py).
pub const TORCH_PEER: &str = "torch_peer.py";

/// What the PyTorch peer runs with, for the report's notes.
pub fn torch_note(header: &serde_json::Value) -> String {
    let v = |k: &str| header[k].as_str().unwrap_or("-").to_string();
    format!(
        "PyTorch {} (CPU kernels: {}), transformers {}, peft {}, sentence-transformers {}, {} threads",
        v("torch"),
        v("cpu_capability"),
        v("transformers"),
        v("peft"),
        v("sentence_transformers"),
        header["threads"]
    )
}

/// The suites in the order `all` runs them.
pub const ALL: &[&str] = &["gemm", "attention", "topk", "lora", "generate", "train", "embed"];

/// What every suite needs.
pub struct Ctx {
    pub quick: bool,
    pub budget: Budget,
    pub ceilings: Ceilings,
    /// The workspace root (the Python peers live in bench/).
    pub root: PathBuf,
    /// Scratch space for data files the Python peers read.
    pub scratch: PathBuf,
    /// PYTHONPATH holding the pinned faiss-cpu and numpy wheels, when installed.
    pub python_path: Option<PathBuf>,
    /// PYTHONPATH holding the pinned PyTorch stack (torch, transformers, peft,
    /// sentence-transformers) and the MiniLM model package, when installed.
    pub torch_path: Option<PathBuf>,
    /// Skip the peers that need Python.
    pub no_python: bool,
}

impl Ctx {
    /// Runs `python3 bench/SCRIPT ARGS` with every BLAS/OpenMP pool at ragtune's thread count and
    /// parses the one JSON object it prints. `Ok(None)` (with the reason in `notes`) when Python
    /// peers are switched off or Python / the module is missing; a script that fails otherwise
    /// is an error.
    pub fn python(
        &self,
        script: &str,
        args: &[String],
        notes: &mut Vec<String>,
    ) -> Result<Option<serde_json::Value>> {
        if self.no_python {
            notes.push(format!("{script} not run (--no-python)"));
            return Ok(None);
        }
        let mut cmd = self.python_command(script, args);
        let out = match cmd.output() {
            Ok(out) => out,
            Err(e) => {
                notes.push(format!("{script} not run: python3 could not start ({e}); install python3"));
                return Ok(None);
            }
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            if stderr.contains("ModuleNotFoundError") {
                let line = stderr.lines().rfind(|l| l.contains("ModuleNotFoundError")).unwrap_or("");
                notes.push(format!("{script} not run: {} ({})", line.trim(), self.wheels(script).1));
                return Ok(None);
            }
            bail!("bench/{script} failed ({}):\n{stderr}", out.status);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let json = text.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or("");
        serde_json::from_str(json)
            .with_context(|| format!("bench/{script} printed no JSON object:\n{text}"))
            .map(Some)
    }

    /// `python3 bench/SCRIPT ARGS` with every BLAS/OpenMP pool at ragtune's thread count, its idle
    /// threads' spinning bounded, and the wheels' PYTHONPATH.
    ///
    /// A peer's pool keeps spinning after its call returns (OpenBLAS's server ~2^28 cycles, GNU
    /// OpenMP 300k pause loops), on the cores the next timed call — often ragtune's — needs.
    /// In one run on the 2-core AMD EPYC (2026-12-05) that made ragtune's 256³ SGEMM 3.09 ms
    /// against 0.69 ms with the peers' idle threads asleep. The bounds keep each peer spinning
    /// between the parallel regions of one call (microseconds apart) and asleep within about a
    /// millisecond of its end.
    fn python_command(&self, script: &str, args: &[String]) -> Command {
        let n = threads().to_string();
        let mut cmd = Command::new("python3");
        cmd.arg(self.root.join("bench").join(script)).args(args);
        for var in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"] {
            cmd.env(var, &n);
        }
        cmd.env("GOMP_SPINCOUNT", "10000").env("OPENBLAS_THREAD_TIMEOUT", "20");
        if let Some(p) = self.wheels(script).0 {
            cmd.env("PYTHONPATH", p);
        }
        cmd
    }

    /// The wheel folder a peer script runs with, and the sentence that says how it gets there.
    /// The PyTorch stack has its own folder: its NumPy need not be the one FAISS was built for.
    fn wheels(&self, script: &str) -> (Option<&PathBuf>, &'static str) {
        if script == TORCH_PEER {
            (
                self.torch_path.as_ref(),
                "cargo xtask bench installs torch, transformers, peft and sentence-transformers into target/torch-py",
            )
        } else {
            (self.python_path.as_ref(), "cargo xtask bench installs faiss-cpu and numpy into target/faiss-py")
        }
    }

    /// Starts `python3 bench/SCRIPT --serve`: a peer that answers one JSON line per command, so
    /// that its timings alternate with ragtune's in one run. `Ok(None)` (with the reason in
    /// `notes`) when Python peers are off or Python / the module is missing.
    pub fn python_server(&self, script: &str, notes: &mut Vec<String>) -> Result<Option<PyServer>> {
        if self.no_python {
            notes.push(format!("{script} not run (--no-python)"));
            return Ok(None);
        }
        let mut cmd = self.python_command(script, &["--serve".to_string()]);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                notes.push(format!("{script} not run: python3 could not start ({e}); install python3"));
                return Ok(None);
            }
        };
        let stdin = child.stdin.take().context("python stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("python stdout")?);
        let mut server =
            PyServer { script: script.to_string(), child, stdin, stdout, header: serde_json::Value::Null };
        match server.read() {
            Ok(h) => {
                server.header = h;
                Ok(Some(server))
            }
            Err(e) => {
                let _ = server.child.kill();
                let mut stderr = String::new();
                if let Some(mut err) = server.child.stderr.take() {
                    let _ = err.read_to_string(&mut stderr);
                }
                let _ = server.child.wait();
                if let Some(line) = stderr.lines().rfind(|l| l.contains("ModuleNotFoundError")) {
                    notes.push(format!("{script} not run: {} ({})", line.trim(), self.wheels(script).1));
                    return Ok(None);
                }
                Err(e.context(format!("bench/{script} --serve failed:\n{stderr}")))
            }
        }
    }
}

/// A Python peer started with `--serve`: one command line in, one JSON line out.
pub struct PyServer {
    script: String,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The first line it printed (library versions, threads).
    pub header: serde_json::Value,
}

impl PyServer {
    fn read(&mut self) -> Result<serde_json::Value> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("bench/{} exited without an answer", self.script);
        }
        let v: serde_json::Value = serde_json::from_str(line.trim())
            .with_context(|| format!("bench/{} printed no JSON object: {line}", self.script))?;
        if let Some(e) = v.get("error") {
            bail!("bench/{}: {e}", self.script);
        }
        Ok(v)
    }

    /// Sends one command line and returns its JSON answer.
    pub fn ask(&mut self, command: &str) -> Result<serde_json::Value> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        self.read()
    }

    /// Seconds of one call of the peer's current operation, timed in its own process.
    pub fn time_one(&mut self) -> Result<f64> {
        self.ask("time 1")?["times"][0].as_f64().with_context(|| format!("bench/{}: no time", self.script))
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}

/// Runs one suite by name.
pub fn run(name: &str, ctx: &Ctx, notes: &mut Vec<String>) -> Result<Vec<Row>> {
    match name {
        "gemm" => gemm::run(ctx, notes),
        "attention" => attention::run(ctx),
        "topk" => topk::run(ctx, notes),
        "lora" => lora::run(ctx),
        "generate" => generate::run(ctx, notes),
        "train" => train::run(ctx, notes),
        "embed" => embed::run(ctx, notes),
        other => bail!("unknown suite {other:?}; the suites are {}", ALL.join(", ")),
    }
}
