//! The token model in memory for the classifier: loaded from the store's counts and
//! reloaded when training (a mark in the daemon, or `inboxgate spam train` beside it)
//! has moved their generation.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::connection::Reader;
use super::error::StoreError;
use super::Location;
use crate::pipeline::classify::bayes::Model;
use crate::pipeline::classify::ModelSource;

/// How often at most the store is asked whether the model moved, so scoring costs no
/// SQL per message.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The classifier's [`ModelSource`] over the store at `location`.
pub struct ModelCache {
    location: Location,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    reader: Option<Reader>,
    model: Arc<Model>,
    generation: Option<i64>,
    checked: Option<Instant>,
}

impl ModelCache {
    /// Reads the model of the store at `location`, opened on first use.
    pub fn new(location: Location) -> ModelCache {
        ModelCache {
            location,
            state: Mutex::new(CacheState::default()),
        }
    }
}

impl ModelSource for ModelCache {
    fn current(&self) -> (Arc<Model>, Option<i64>) {
        let mut state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        if state.checked.is_some_and(|at| at.elapsed() < CHECK_EVERY) {
            return (state.model.clone(), state.generation);
        }
        state.checked = Some(Instant::now());
        if let Err(e) = refresh(&mut state, &self.location) {
            tracing::warn!(error = %e, "token model not reloaded; keeping the one in memory");
            state.reader = None;
        }
        (state.model.clone(), state.generation)
    }
}

/// Loads the model again when its generation in the store moved.
fn refresh(state: &mut CacheState, location: &Location) -> Result<(), StoreError> {
    if state.reader.is_none() {
        state.reader = Some(Reader::open_at(location)?);
    }
    let Some(reader) = &state.reader else {
        return Ok(());
    };
    let generation = reader.bayes_generation()?;
    if state.generation != Some(generation) {
        let (model, generation) = reader.bayes_model()?;
        state.model = Arc::new(model);
        state.generation = Some(generation);
    }
    Ok(())
}
