//! Priorities: one durable consumer per line (a kind in a mode: a push of
//! TVL's changes, or a reconciliation), and a weighted round robin over them
//! deciding which job takes the next free worker slot.
//!
//! The API budget (per account and per egress IP, enforced by the client) is
//! shared by every job of the process; the order in which jobs reach it is
//! decided here. With the default weights, of 17 consecutive slots when every
//! line waits, pushes of availability take 6, reservation polling 3, pushes
//! of prices 2, availability reconciliation 2, and the other lines 1 each:
//! availability comes first, a manager's change is not queued behind a round
//! of reconciliation, and no line starves. A line with nothing waiting gives
//! its turn to the next.
//!
//! Each line prefetches a job (at most two wait: one taken, one in its
//! channel), so that whether a job waits is known without waiting. A
//! prefetched job that waits for a slot longer than the consumer's ack wait
//! may be delivered a second time; the job's lease keeps the two
//! deliveries from running at once, and the second finds nothing left to do.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use domain::SyncKind;
use futures::FutureExt;
use service_kit::consume::{MAX_PULL_ERRORS, Pull, Pulled, Stopped};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::queue::{JobLane, Mode};
use crate::worker::JobRunner;

/// Slots per round of each line.
pub const DEFAULT_WEIGHTS: [(JobLane, u32); 8] = [
    (JobLane::new(SyncKind::Availability, Mode::Push), 6),
    (JobLane::new(SyncKind::Reservations, Mode::Reconcile), 3),
    (JobLane::new(SyncKind::Pricing, Mode::Push), 2),
    (JobLane::new(SyncKind::Availability, Mode::Reconcile), 2),
    (JobLane::new(SyncKind::Listing, Mode::Push), 1),
    (JobLane::new(SyncKind::Pricing, Mode::Reconcile), 1),
    (JobLane::new(SyncKind::Listing, Mode::Reconcile), 1),
    // Reservation polling is always a reconciliation; kept so that nothing
    // published here waits forever.
    (JobLane::new(SyncKind::Reservations, Mode::Push), 1),
];

/// A smooth weighted round robin (nginx's): each line appears `weight` times
/// per round, spread out rather than in blocks.
pub fn round<T>(weights: &[(T, u32)]) -> Vec<usize> {
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

/// Walks the round from a cursor: the next lane in weighted order that has a
/// job ready. Kept apart from the consumers so its order can be tested.
#[derive(Debug, Clone)]
pub struct Picker {
    order: Vec<usize>,
    cursor: usize,
}

impl Picker {
    pub fn new<T>(weights: &[(T, u32)]) -> Self {
        Self {
            order: round(weights),
            cursor: 0,
        }
    }

    /// The lane to serve next among those `ready` says have a job.
    pub fn pick(&mut self, mut ready: impl FnMut(usize) -> bool) -> Option<usize> {
        let len = self.order.len();
        (0..len).find_map(|step| {
            let lane = self.order[(self.cursor + step) % len];
            ready(lane).then(|| {
                self.cursor = (self.cursor + step + 1) % len;
                lane
            })
        })
    }
}

type Item = Result<async_nats::jetstream::Message, String>;

/// One line's jobs, prefetched by a task of its own.
struct Lane {
    lane: JobLane,
    jobs: mpsc::Receiver<Item>,
    /// A job taken while waiting for any lane, not dispatched yet.
    held: Option<Item>,
}

impl Lane {
    /// A job if one is here now; `Err` when the lane's pull has ended.
    fn ready(&mut self) -> Result<bool, ()> {
        if self.held.is_some() {
            return Ok(true);
        }
        match self.jobs.try_recv() {
            Ok(item) => {
                self.held = Some(item);
                Ok(true)
            }
            Err(mpsc::error::TryRecvError::Empty) => Ok(false),
            Err(mpsc::error::TryRecvError::Disconnected) => Err(()),
        }
    }
}

/// Pauses a lane's puller after a failed pull, so a consumer that keeps
/// failing is not asked in a tight loop.
const PULL_ERROR_PAUSE: Duration = Duration::from_millis(500);

/// Prefetches one lane's jobs, one at a time: room in the lane first, then a
/// job, so none is pulled to wait in a full line. On `halt` the request in
/// flight is read to its end and what it brings goes back.
async fn prefetch(consumer: PullConsumer, jobs: mpsc::Sender<Item>, halt: CancellationToken) {
    let mut pull = Pull::new(consumer, 1);
    loop {
        let room = tokio::select! {
            biased;
            () = halt.cancelled() => break,
            room = jobs.reserve() => match room {
                Ok(room) => room,
                Err(_) => break,
            },
        };
        match pull.next(&halt).await {
            Pulled::Message(message) => room.send(Ok(message)),
            Pulled::Error(error) => {
                room.send(Err(error));
                if service_kit::consume::sleep_or_stop(&halt, PULL_ERROR_PAUSE).await {
                    break;
                }
            }
            Pulled::Stopped => break,
        }
    }
    pull.give_back().await;
}

/// Stops the lanes' pullers, then gives back, at once, the jobs the lanes
/// took and did not start: another replica runs them now, not after the
/// consumer's ack wait. The pullers end first, so none is still handing a
/// job to a lane while the lanes are emptied.
async fn give_back(halt: &CancellationToken, pullers: &mut JoinSet<()>, lanes: &mut [Lane]) {
    halt.cancel();
    while pullers.join_next().await.is_some() {}
    for lane in lanes {
        lane.jobs.close();
        let mut items: Vec<Item> = lane.held.take().into_iter().collect();
        while let Ok(item) = lane.jobs.try_recv() {
            items.push(item);
        }
        for message in items.into_iter().flatten() {
            service_kit::consume::ack(&message, async_nats::jetstream::AckKind::Nak(None)).await;
        }
    }
}

/// Runs jobs from the kinds' consumers, `concurrency` at a time, until `stop`
/// or until pulling keeps failing.
pub async fn run(
    runner: &Arc<JobRunner>,
    consumers: &[(JobLane, PullConsumer)],
    weights: &[(JobLane, u32)],
    concurrency: usize,
    stop: &CancellationToken,
    tracker: &TaskTracker,
) -> Stopped {
    let halt = stop.child_token();
    let mut pullers = JoinSet::new();
    let mut lanes = Vec::with_capacity(consumers.len());
    for (lane, consumer) in consumers {
        let (tx, rx) = mpsc::channel(1);
        pullers.spawn(prefetch(consumer.clone(), tx, halt.clone()));
        lanes.push(Lane {
            lane: *lane,
            jobs: rx,
            held: None,
        });
    }
    let stopped = dispatch(runner, &mut lanes, weights, concurrency, stop, tracker).await;
    give_back(&halt, &mut pullers, &mut lanes).await;
    stopped
}

/// Hands the lanes' jobs to free worker slots in weighted order.
async fn dispatch(
    runner: &Arc<JobRunner>,
    lanes: &mut [Lane],
    weights: &[(JobLane, u32)],
    concurrency: usize,
    stop: &CancellationToken,
    tracker: &TaskTracker,
) -> Stopped {
    let concurrency = concurrency.max(1);
    let lane_weights: Vec<(JobLane, u32)> = lanes
        .iter()
        .map(|lane| {
            let weight = weights
                .iter()
                .find(|(l, _)| *l == lane.lane)
                .map_or(1, |(_, w)| *w);
            (lane.lane, weight.max(1))
        })
        .collect();
    let mut picker = Picker::new(&lane_weights);
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
        // A job already waiting, in weighted order from the cursor; else wait
        // for the first to arrive and choose again.
        let lane = loop {
            let mut ended = false;
            let chosen = picker.pick(|i| match lanes[i].ready() {
                Ok(ready) => ready,
                Err(()) => {
                    ended = true;
                    false
                }
            });
            if ended {
                return Stopped::Rebind;
            }
            if let Some(lane) = chosen {
                break lane;
            }
            let arrivals = lanes
                .iter_mut()
                .enumerate()
                .map(|(i, lane)| lane.jobs.recv().map(move |item| (i, item)).boxed());
            let arrival = tokio::select! {
                biased;
                () = stop.cancelled() => None,
                ((arrived, item), _, _) = futures::future::select_all(arrivals) => Some((arrived, item)),
            };
            let Some((arrived, item)) = arrival else {
                return Stopped::Shutdown;
            };
            match item {
                Some(item) => lanes[arrived].held = Some(item),
                None => return Stopped::Rebind,
            }
        };
        let line = lanes[lane].lane;
        match lanes[lane].held.take() {
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
                tracing::warn!(%error, lane = line.name(), "pull error");
                if failed_pulls >= MAX_PULL_ERRORS {
                    return Stopped::Rebind;
                }
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_gives_each_line_its_weight_spread_out() {
        let order = round(&DEFAULT_WEIGHTS);
        assert_eq!(order.len(), 17);
        for (i, (_, weight)) in DEFAULT_WEIGHTS.iter().enumerate() {
            assert_eq!(order.iter().filter(|&&l| l == i).count() as u32, *weight);
        }
        assert_eq!(order[0], 0, "pushes of availability open the round");
        // Pushes of availability never wait more than three other slots for
        // their next turn.
        let positions: Vec<usize> = order
            .iter()
            .enumerate()
            .filter(|(_, l)| **l == 0)
            .map(|(p, _)| p)
            .collect();
        assert!(positions.windows(2).all(|w| w[1] - w[0] <= 4), "{order:?}");
        // The lowest lines get their slot within every round: no starvation.
        assert!((0..DEFAULT_WEIGHTS.len()).all(|lane| order.contains(&lane)));
    }

    #[test]
    fn fresh_pushes_go_before_a_round_of_reconciliation() {
        let lane = |kind, mode| {
            DEFAULT_WEIGHTS
                .iter()
                .position(|(l, _)| *l == JobLane::new(kind, mode))
                .unwrap()
        };
        let push = lane(SyncKind::Availability, Mode::Push);
        let reconcile = lane(SyncKind::Availability, Mode::Reconcile);
        let mut picker = Picker::new(&DEFAULT_WEIGHTS);
        // Both lines full: three pushes for each reconciliation.
        let picks: Vec<usize> = (0..16)
            .map(|_| picker.pick(|l| l == push || l == reconcile).unwrap())
            .collect();
        assert_eq!(
            picks.iter().filter(|&&l| l == push).count(),
            12,
            "{picks:?}"
        );
        assert_eq!(picks[0], push);
        assert!(
            JobLane::all()
                .iter()
                .all(|l| DEFAULT_WEIGHTS.iter().any(|(w, _)| w == l)),
            "every line has a weight"
        );
    }

    #[test]
    fn the_picker_skips_kinds_with_nothing_waiting() {
        let mut picker = Picker::new(&DEFAULT_WEIGHTS);
        // Only pushes of availability (0) and prices (2) wait: 6 to 2 per round.
        let picks: Vec<usize> = (0..16)
            .map(|_| picker.pick(|lane| lane == 0 || lane == 2).unwrap())
            .collect();
        assert_eq!(picks.iter().filter(|&&l| l == 0).count(), 12, "{picks:?}");
        assert_eq!(picks.iter().filter(|&&l| l == 2).count(), 4, "{picks:?}");
        assert_eq!(picks[0], 0);
        // Nothing waiting: nothing picked, and the cursor does not move.
        assert_eq!(picker.pick(|_| false), None);
        // Only listing reconciliation waiting: served at once.
        assert_eq!(picker.pick(|lane| lane == 6), Some(6));
    }

    #[test]
    fn equal_weights_alternate() {
        let order = round(&[(SyncKind::Availability, 1), (SyncKind::Pricing, 1)]);
        assert_eq!(order, [0, 1]);
    }
}
