//! Shared by the black-box tests that run `etchr serve` (each test crate includes this module).

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
    pub fn start(extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_etchr"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("ETCHR_CONFIG")
            .env_remove("ETCHR_LISTEN")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
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
                    child.stderr.take().unwrap().read_to_string(&mut err).ok();
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
