//! Shared by the black-box tests and the HTTP benches that run `etchr serve` (each includes
//! this module).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

/// A running `etchr serve` on a free loopback port, killed on drop.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Server {
    /// Starts the binary with `extra` arguments (no config file or listen address from the
    /// environment) and waits for its "etchr listening on ADDR" line; panics with its stderr
    /// if it exits first.
    #[allow(dead_code)] // the benches that include this module start with `start_with`
    pub fn start(extra: &[&str]) -> Server {
        Self::start_with(extra, &[], None)
    }

    /// Like [`Server::start`], with extra environment variables and, when `log` is given, the
    /// log (stderr) written to that file instead of a pipe (so a chatty log cannot fill the
    /// pipe and stall the server).
    pub fn start_with(
        extra: &[&str],
        env: &[(&str, &str)],
        log: Option<&std::path::Path>,
    ) -> Server {
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("log file")),
            None => Stdio::piped(),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_etchr"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("ETCHR_CONFIG")
            .env_remove("ETCHR_LISTEN")
            .env_remove("ETCHR_API_KEYS")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("etchr starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(addr) = line.strip_prefix("etchr listening on ") {
                        break addr.trim().to_string();
                    }
                }
                _ => {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        e.read_to_string(&mut err).ok();
                    }
                    panic!("etchr serve exited before listening: {err}");
                }
            }
        };
        Server {
            child,
            base: format!("http://{addr}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
