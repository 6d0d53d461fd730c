//! Why this file exists: deciding messages on every core while keeping the meaning of one
//! message after the other. A plugin may read state (its key-value store) that the message
//! before wrote, so messages are decided ahead, at the same time, and then taken in order:
//! a decision stands when none of the messages decided with it wrote what it read (the
//! plugin calls record their reads); otherwise it is made again, now that every message
//! before it is committed. The caller commits each settled decision before the next one.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::{Stream, StreamExt};

use super::{Decision, Pipeline, WrittenState};
use crate::message::Email;

/// `messages` decided up to `jobs` at a time (on the runtime's worker threads), in order;
/// each comes with its early decision (None with `jobs` = 1: it is decided when settled).
/// `parts` gives a message's email and key.
pub fn decide_ahead<M, I, F>(
    pipeline: Arc<Pipeline>,
    messages: I,
    jobs: usize,
    parts: F,
) -> impl Stream<Item = (M, Option<Decision>)>
where
    I: Iterator<Item = M>,
    F: Fn(&M) -> (Email, String),
{
    let jobs = jobs.max(1);
    futures::stream::iter(messages)
        .map(move |m| {
            let task = (jobs > 1).then(|| {
                let (email, key) = parts(&m);
                let pipeline = pipeline.clone();
                tokio::spawn(async move { pipeline.process(&email, &key).await })
            });
            async move {
                let early = match task {
                    // A panic is contained in `process`; a lost task is decided again.
                    Some(t) => t.await.ok(),
                    None => None,
                };
                (m, early)
            }
        })
        .buffered(jobs)
}

/// Settles early decisions in order (see the file's comment).
pub struct InOrder {
    /// The state writes of the last messages settled: the ones a message decided ahead may
    /// not have seen.
    recent: VecDeque<WrittenState>,
    window: usize,
}

impl InOrder {
    pub fn new(jobs: usize) -> InOrder {
        InOrder {
            recent: VecDeque::new(),
            window: jobs.max(1),
        }
    }

    /// The decision for `email` as if decided after every message settled before it: the
    /// early one when it still holds, else a new one. `commits`: false for a dry run, where
    /// nothing is written and so no early decision can be stale.
    pub async fn settle(
        &mut self,
        pipeline: &Pipeline,
        email: &Email,
        key: &str,
        early: Option<Decision>,
        commits: bool,
    ) -> Decision {
        let decision = match early {
            Some(d) if !commits || !self.recent.iter().any(|w| d.depends_on(w)) => d,
            _ => pipeline.process(email, key).await,
        };
        let mut written = WrittenState::default();
        written.add(&decision);
        self.recent.push_back(written);
        if self.recent.len() > self.window {
            self.recent.pop_front();
        }
        decision
    }
}
