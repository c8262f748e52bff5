//! Readiness: named checks, all of which must pass for `/readyz` to answer 200.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

type Check = Arc<dyn Fn() -> bool + Send + Sync>;

#[derive(Clone, Default)]
pub struct Health {
    checks: Arc<RwLock<BTreeMap<&'static str, Check>>>,
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
