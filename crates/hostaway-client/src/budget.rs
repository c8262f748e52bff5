//! Where a request's permission to go out comes from: an account's budget
//! (Hostaway: 20 requests per 10 s, across every caller of the account) and
//! the egress IP's (15 per 10 s, across every caller behind that IP), and
//! whether the account's circuit is open.
//!
//! [`LocalBudget`] keeps both in this process (governor, on tokio's clock):
//! right for one process, tests and the admin tool. A deployment of several
//! replicas plugs in a budget they share (the sync dispatcher's, in
//! PostgreSQL), so that their sum never exceeds Hostaway's limits.

use std::fmt::Debug;
use std::time::Duration;

use domain::AccountId;
use futures::future::BoxFuture;
use governor::clock::Clock;

use crate::config::RateLimit;
use crate::limits::{Limits, TokioClock};

/// What the budget says about one more request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Taken: send now. What is left of each budget, when known.
    Granted {
        account_left: Option<u32>,
        egress_left: Option<u32>,
    },
    /// Nothing taken: the account's budget frees up after `account`, the
    /// egress's after `egress` (zero: not the one in the way).
    Wait { account: Duration, egress: Duration },
    /// The account's circuit is open (maybe by another replica) for this long.
    CircuitOpen(Duration),
}

pub trait Budget: Send + Sync + Debug {
    /// Takes one request's worth of the account's and the egress's budgets,
    /// both or neither.
    fn take<'a>(&'a self, account: &'a AccountId) -> BoxFuture<'a, Result<Admission, String>>;

    /// The account's circuit opened here: open it for every caller.
    fn circuit_opened<'a>(
        &'a self,
        account: &'a AccountId,
        open_for: Duration,
    ) -> BoxFuture<'a, ()>;

    /// The account's circuit closed again here.
    fn circuit_closed<'a>(&'a self, account: &'a AccountId) -> BoxFuture<'a, ()>;
}

/// Both budgets in this process.
#[derive(Debug)]
pub struct LocalBudget {
    limits: Limits,
}

impl LocalBudget {
    pub fn new(account: &RateLimit, egress: &RateLimit) -> Self {
        Self {
            limits: Limits::new(account, egress),
        }
    }
}

impl Budget for LocalBudget {
    fn take<'a>(&'a self, account: &'a AccountId) -> BoxFuture<'a, Result<Admission, String>> {
        Box::pin(async move {
            let account_left = match self.limits.accounts.check_key(account) {
                Ok(snapshot) => snapshot.remaining_burst_capacity(),
                Err(not_until) => {
                    return Ok(Admission::Wait {
                        account: not_until.wait_time_from(TokioClock.now()),
                        egress: Duration::ZERO,
                    });
                }
            };
            // The account's permission is taken: the egress's is waited for
            // here (every caller of this process shares it; no one to be
            // fair to).
            let egress_left = loop {
                match self.limits.ip.check() {
                    Ok(snapshot) => break snapshot.remaining_burst_capacity(),
                    Err(not_until) => {
                        tokio::time::sleep(not_until.wait_time_from(TokioClock.now())).await
                    }
                }
            };
            Ok(Admission::Granted {
                account_left: Some(account_left),
                egress_left: Some(egress_left),
            })
        })
    }

    fn circuit_opened<'a>(&'a self, _: &'a AccountId, _: Duration) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn circuit_closed<'a>(&'a self, _: &'a AccountId) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}
