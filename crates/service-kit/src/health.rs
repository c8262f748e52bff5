//! Readiness: named checks, all of which must pass for `/readyz` to answer 200.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

type Check = Arc<dyn Fn() -> bool + Send + Sync>;

#[derive(Clone, Default)]
pub struct Health {
    checks: Arc<RwLock<BTreeMap<&'static str, Check>>>,
    conditions: Arc<RwLock<BTreeMap<&'static str, Condition>>>,
}

/// A readiness check that says why it fails: `/readyz` names the problem
/// (a stream configured otherwise than this service expects, a schema
/// behind its binary), so that an operator need not read the logs.
#[derive(Debug, Clone)]
pub struct Condition(Arc<RwLock<Option<String>>>);

impl Condition {
    /// Passing.
    pub fn ok(&self) {
        if let Ok(mut reason) = self.0.write() {
            *reason = None;
        }
    }

    /// Failing, for `reason`.
    pub fn fail(&self, reason: impl Into<String>) {
        if let Ok(mut current) = self.0.write() {
            *current = Some(reason.into());
        }
    }

    pub fn is_ok(&self) -> bool {
        self.0
            .read()
            .map(|reason| reason.is_none())
            .unwrap_or(false)
    }

    pub fn reason(&self) -> Option<String> {
        self.0.read().ok().and_then(|reason| reason.clone())
    }
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("report", &self.report())
            .finish()
    }
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a check evaluated on every `/readyz`.
    pub fn add(&self, name: &'static str, check: impl Fn() -> bool + Send + Sync + 'static) {
        if let Ok(mut checks) = self.checks.write() {
            checks.insert(name, Arc::new(check));
        }
    }

    /// Adds a check that fails with `initial` until told otherwise.
    pub fn condition(&self, name: &'static str, initial: impl Into<String>) -> Condition {
        let condition = Condition(Arc::new(RwLock::new(Some(initial.into()))));
        let checked = condition.clone();
        self.add(name, move || checked.is_ok());
        if let Ok(mut conditions) = self.conditions.write() {
            conditions.insert(name, condition.clone());
        }
        condition
    }

    /// Why the failing conditions fail.
    pub fn problems(&self) -> BTreeMap<&'static str, String> {
        self.conditions
            .read()
            .map(|conditions| {
                conditions
                    .iter()
                    .filter_map(|(name, condition)| condition.reason().map(|r| (*name, r)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Each check's current result.
    pub fn report(&self) -> BTreeMap<&'static str, bool> {
        let checks = match self.checks.read() {
            Ok(checks) => checks.clone(),
            Err(_) => return BTreeMap::new(),
        };
        checks
            .into_iter()
            .map(|(name, check)| (name, check()))
            .collect()
    }

    /// Ready when at least one check is registered and every check passes: a
    /// service that has not registered its checks yet is still starting.
    pub fn is_ready(&self) -> bool {
        let report = self.report();
        !report.is_empty() && report.values().all(|ok| *ok)
    }
}
