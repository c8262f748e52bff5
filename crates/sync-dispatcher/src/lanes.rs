//! Priorities: one durable consumer per kind, and a weighted round robin over
//! them deciding which job takes the next free worker slot.
//!
//! The API budget (per account and per egress IP, enforced by the client) is
//! shared by every job of the process; the order in which jobs reach it is
//! decided here. With the default weights, of 12 consecutive slots when all
//! kinds wait, 6 go to availability, 3 to reservation polling, 2 to pricing
//! and 1 to listing details: availability comes first, and no kind starves.
//! A kind with nothing waiting gives its turn to the next.

use std::pin::Pin;
use std::sync::Arc;

use async_nats::jetstream::consumer::PullConsumer;
use domain::SyncKind;
use futures::{FutureExt, Stream, StreamExt};
use service_kit::consume::{MAX_PULL_ERRORS, Stopped};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::worker::JobRunner;

/// Slots per round of each kind.
pub const DEFAULT_WEIGHTS: [(SyncKind, u32); 4] = [
    (SyncKind::Availability, 6),
    (SyncKind::Reservations, 3),
    (SyncKind::Pricing, 2),
    (SyncKind::Listing, 1),
];

/// A smooth weighted round robin (nginx's): each kind appears `weight` times
/// per round, spread out rather than in blocks.
pub fn round(weights: &[(SyncKind, u32)]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|(_, w)| i64::from(*w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut order = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        for (i, (_, w)) in weights.iter().enumerate() {
            current[i] += i64::from(*w);
        }
        let Some(best) = (0..weights.len()).max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
        else {
            break;
        };
        current[best] -= total;
        order.push(best);
    }
    order
}

type Messages = Pin<Box<dyn Stream<Item = Result<async_nats::jetstream::Message, String>> + Send>>;

/// Runs jobs from the kinds' consumers, `concurrency` at a time, until `stop`
/// or until pulling keeps failing.
pub async fn run(
    runner: &Arc<JobRunner>,
    consumers: &[(SyncKind, PullConsumer)],
    weights: &[(SyncKind, u32)],
    concurrency: usize,
    stop: &CancellationToken,
    tracker: &TaskTracker,
) -> Stopped {
    let concurrency = concurrency.max(1);
    let mut lanes: Vec<(SyncKind, Messages)> = Vec::with_capacity(consumers.len());
    for (kind, consumer) in consumers {
        let messages = match service_kit::consume::messages(consumer, concurrency).await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, kind = kind.as_str(), "cannot pull sync jobs");
                return Stopped::Rebind;
            }
        };
        lanes.push((
            *kind,
            Box::pin(messages.map(|m| m.map_err(|e| e.to_string()))),
        ));
    }
    // Weights in the order of the lanes.
    let lane_weights: Vec<(SyncKind, u32)> = lanes
        .iter()
        .map(|(kind, _)| {
            let weight = weights
                .iter()
                .find(|(k, _)| k == kind)
                .map_or(1, |(_, w)| *w);
            (*kind, weight.max(1))
        })
        .collect();
    let order = round(&lane_weights);
    let mut cursor = 0usize;
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut failed_pulls = 0u32;
    loop {
        let permit = tokio::select! {
            biased;
            () = stop.cancelled() => return Stopped::Shutdown,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return Stopped::Shutdown,
            },
        };
        // A job already waiting, in weighted order from the cursor…
        let mut ready = None;
        for step in 0..order.len() {
            let lane = order[(cursor + step) % order.len()];
            if let Some(item) = lanes[lane].1.next().now_or_never() {
                cursor = (cursor + step + 1) % order.len();
                ready = Some((lane, item));
                break;
            }
        }
        // …or the first to arrive (the higher priority on a tie).
        let (lane, item) = match ready {
            Some(ready) => ready,
            None => {
                let arrivals = lanes
                    .iter_mut()
                    .enumerate()
                    .map(|(i, (_, messages))| messages.next().map(move |item| (i, item)).boxed());
                tokio::select! {
                    biased;
                    () = stop.cancelled() => return Stopped::Shutdown,
                    (arrived, _, _) = futures::future::select_all(arrivals) => arrived,
                }
            }
        };
        let kind = lanes[lane].0;
        match item {
            Some(Ok(message)) => {
                failed_pulls = 0;
                let runner = Arc::clone(runner);
                tracker.spawn(async move {
                    runner.run(message).await;
                    drop(permit);
                });
            }
            Some(Err(error)) => {
                failed_pulls += 1;
                tracing::warn!(%error, kind = kind.as_str(), "pull error");
                if failed_pulls >= MAX_PULL_ERRORS {
                    return Stopped::Rebind;
                }
            }
            None => return Stopped::Rebind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_gives_each_kind_its_weight_spread_out() {
        let order = round(&DEFAULT_WEIGHTS);
        assert_eq!(order.len(), 12);
        for (i, (_, weight)) in DEFAULT_WEIGHTS.iter().enumerate() {
            assert_eq!(order.iter().filter(|&&l| l == i).count() as u32, *weight);
        }
        assert_eq!(order[0], 0, "availability opens the round");
        // Availability never waits more than two other slots for its next turn.
        let positions: Vec<usize> = order
            .iter()
            .enumerate()
            .filter(|(_, l)| **l == 0)
            .map(|(p, _)| p)
            .collect();
        assert!(positions.windows(2).all(|w| w[1] - w[0] <= 3), "{order:?}");
        // The lowest kind gets its slot within every round: no starvation.
        assert!(order.contains(&3));
    }

    #[test]
    fn equal_weights_alternate() {
        let order = round(&[(SyncKind::Availability, 1), (SyncKind::Pricing, 1)]);
        assert_eq!(order, [0, 1]);
    }
}
