//! What the demo prints: lines that scroll (events, notifications, chapters) above a live block
//! that is redrawn in place on a terminal, or printed when it changes elsewhere.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};

/// What the screen shows and the summary collects.
pub(super) struct Screen {
    pub(super) tty: bool,
    pub(super) drawn: usize,
    pub(super) seen_events: BTreeSet<(String, i32)>,
    pub(super) seen_notifications: usize,
    pub(super) events: Vec<String>,
    pub(super) last_block: Vec<String>,
}

impl Screen {
    pub(super) fn new() -> Self {
        Self {
            tty: std::io::stdout().is_terminal(),
            drawn: 0,
            seen_events: BTreeSet::new(),
            seen_notifications: 0,
            events: Vec::new(),
            last_block: Vec::new(),
        }
    }

    /// Prints lines above the live block.
    pub(super) fn say(&mut self, lines: &[String]) {
        let mut out = std::io::stdout().lock();
        if self.tty && self.drawn > 0 {
            let _ = write!(out, "\x1b[{}A\x1b[J", self.drawn);
            self.drawn = 0;
        }
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
        if self.tty && !self.last_block.is_empty() {
            for l in &self.last_block {
                let _ = writeln!(out, "{l}");
            }
            self.drawn = self.last_block.len();
        }
        let _ = out.flush();
    }

    /// Redraws the live block (on a terminal), or prints it when a canary's line changes.
    pub(super) fn block(&mut self, lines: Vec<String>) {
        if self.tty {
            let mut out = std::io::stdout().lock();
            if self.drawn > 0 {
                let _ = write!(out, "\x1b[{}A\x1b[J", self.drawn);
            }
            for l in &lines {
                let _ = writeln!(out, "{l}");
            }
            let _ = out.flush();
            self.drawn = lines.len();
            self.last_block = lines;
        } else {
            let heads = |ls: &[String]| -> Vec<String> {
                ls.iter().filter(|l| !l.starts_with(' ')).cloned().collect()
            };
            if heads(&lines) != heads(&self.last_block) {
                let mut out = std::io::stdout().lock();
                for l in &lines {
                    let _ = writeln!(out, "  | {l}");
                }
                let _ = out.flush();
            }
            self.last_block = lines;
        }
    }

    /// Ends the live block (it stays on screen as drawn).
    pub(super) fn freeze(&mut self) {
        self.drawn = 0;
        self.last_block.clear();
    }
}
