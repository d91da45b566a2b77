//! Listings resolved recently, kept in memory: every marketplace order asks the catalog to
//! resolve its SKUs, and the same few listings are asked about again and again.
//!
//! Only listings found are kept. A SKU with no listing is always looked up, so a listing
//! added a moment ago is found on every replica at once, which is what retrying failed
//! orders after adding listings relies on.
//!
//! A kept listing must not outlive a change to it. Every write to listings or products
//! forgets the writing client's listings here once it commits, so this replica reads its
//! own writes, and announces the change to the other replicas, which forget them when they
//! hear it, a moment after the commit (see [`kosha_runtime::changes`]). For that moment
//! another replica may still resolve a remapped listing to its old SKU or a disabled
//! product as active: the same answer it gave just before the commit. Nothing is used
//! while changes could go unheard (before the first listen, and while the listening
//! connection is down), and every entry expires after [`MOST_AGE`] in case a connection
//! dies without anyone noticing.
//!
//! A read of the database races with writes: it may read a listing just before a write
//! commits and keep it just after the write was forgotten here. Every forgetting moves a
//! generation on, and a read keeps what it found only when no forgetting happened since it
//! began.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use kosha_runtime::changes::Heard;

use crate::domain::{ChannelCode, ClientId, Resolved, Sku};

/// The topic on which writes to listings and products are announced, with the client's id.
pub(crate) const TOPIC: &str = "kosha_catalog_listings";

/// Longest an entry is used, should an announcement ever go unheard.
pub(crate) const MOST_AGE: Duration = Duration::from_secs(60);

/// Resolved listings by client, channel and marketplace SKU.
#[derive(Debug)]
pub(crate) struct ResolutionCache {
    most_entries: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Whether entries may be used and kept: only while changes are heard.
    live: bool,
    /// Moves on with every forgetting.
    generation: u64,
    entries: usize,
    by_client: HashMap<String, HashMap<String, HashMap<String, Entry>>>,
}

#[derive(Debug)]
struct Entry {
    resolved: Resolved,
    kept_at: Instant,
}

/// What the cache holds for one call: an entry or nothing per SKU asked, and the
/// generation to keep what the database answers for the rest with.
#[derive(Debug)]
pub(crate) struct Lookup {
    pub hits: Vec<Option<Resolved>>,
    pub generation: u64,
}

impl ResolutionCache {
    /// An empty cache of at most `most_entries` listings (none: it keeps nothing), not
    /// live until it hears that changes are heard.
    pub(crate) fn new(most_entries: usize) -> Self {
        Self {
            most_entries,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entries for `marketplace_skus`, each no older than [`MOST_AGE`].
    pub(crate) fn look_up(
        &self,
        client: &ClientId,
        channel: &ChannelCode,
        marketplace_skus: &[&Sku],
    ) -> Lookup {
        let state = self.lock();
        let of_channel_opt = state
            .live
            .then(|| state.by_client.get(client.as_str()))
            .flatten()
            .and_then(|channels| channels.get(channel.as_str()));
        let hits = marketplace_skus
            .iter()
            .map(|sku| {
                let entry = of_channel_opt?.get(sku.as_str())?;
                (entry.kept_at.elapsed() < MOST_AGE).then(|| entry.resolved.clone())
            })
            .collect();
        Lookup {
            hits,
            generation: state.generation,
        }
    }

    /// Keeps listings read from the database, unless something was forgotten since the read
    /// began at `generation`. When full, everything is forgotten first: cheaper than
    /// tracking use, and refilled by the next calls.
    pub(crate) fn keep<'a>(
        &self,
        generation: u64,
        client: &ClientId,
        channel: &ChannelCode,
        found: impl ExactSizeIterator<Item = &'a Resolved>,
    ) {
        let mut state = self.lock();
        if !state.live || state.generation != generation || found.len() == 0 {
            return;
        }
        if state.entries + found.len() > self.most_entries {
            if found.len() > self.most_entries {
                return;
            }
            state.by_client.clear();
            state.entries = 0;
        }
        let kept_at = Instant::now();
        let State {
            by_client, entries, ..
        } = &mut *state;
        let of_channel = by_client
            .entry(client.as_str().to_string())
            .or_default()
            .entry(channel.as_str().to_string())
            .or_default();
        for resolved in found {
            let entry = Entry {
                resolved: resolved.clone(),
                kept_at,
            };
            if of_channel
                .insert(resolved.marketplace_sku.to_string(), entry)
                .is_none()
            {
                *entries += 1;
            }
        }
    }

    /// Forgets every listing of `client`, whose listings or products changed.
    pub(crate) fn forget_client(&self, client: &str) {
        let mut state = self.lock();
        state.generation += 1;
        if let Some(channels) = state.by_client.remove(client) {
            state.entries -= channels.values().map(HashMap::len).sum::<usize>();
        }
    }

    /// Acts on what the listener for changes heard.
    pub(crate) fn hear(&self, heard: Heard) {
        match heard {
            Heard::Changed(client) => self.forget_client(&client),
            Heard::Listening => self.forget_all(true),
            Heard::Deaf => self.forget_all(false),
        }
    }

    /// Forgets everything: what was kept may have changed unheard. Live again only when
    /// `live`.
    fn forget_all(&self, live: bool) {
        let mut state = self.lock();
        state.generation += 1;
        state.by_client.clear();
        state.entries = 0;
        state.live = live && self.most_entries > 0;
        tracing::debug!(live = state.live, "resolved listings forgotten");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(client: &str, channel: &str) -> (ClientId, ChannelCode) {
        (
            ClientId::parse("client_id", client).unwrap(),
            ChannelCode::parse("channel", channel).unwrap(),
        )
    }

    fn sku(text: &str) -> Sku {
        Sku::parse("sku", text).unwrap()
    }

    fn resolved(marketplace_sku: &str, client_sku: &str) -> Resolved {
        Resolved {
            marketplace_sku: sku(marketplace_sku),
            sku: sku(client_sku),
            active: true,
        }
    }

    fn hits(cache: &ResolutionCache, client: &str, skus: &[&str]) -> Vec<Option<String>> {
        let (client, channel) = key(client, "AMAZON");
        let skus: Vec<Sku> = skus.iter().map(|text| sku(text)).collect();
        let asked: Vec<&Sku> = skus.iter().collect();
        cache
            .look_up(&client, &channel, &asked)
            .hits
            .into_iter()
            .map(|hit| hit.map(|resolved| resolved.sku.to_string()))
            .collect()
    }

    fn keep(cache: &ResolutionCache, generation: u64, client: &str, found: &[Resolved]) {
        let (client, channel) = key(client, "AMAZON");
        cache.keep(generation, &client, &channel, found.iter());
    }

    /// Keeps `found` as a read that began now would.
    fn keep_now(cache: &ResolutionCache, client: &str, found: &[Resolved]) {
        keep(cache, generation(cache), client, found);
    }

    fn generation(cache: &ResolutionCache) -> u64 {
        let (client, channel) = key("acme", "AMAZON");
        cache.look_up(&client, &channel, &[]).generation
    }

    #[test]
    fn nothing_is_kept_or_used_until_changes_are_heard_nor_while_they_are_not() {
        let cache = ResolutionCache::new(100);
        keep_now(&cache, "acme", &[resolved("A-1", "K-1")]);
        assert_eq!(hits(&cache, "acme", &["A-1"]), [None]);

        cache.hear(Heard::Listening);
        keep_now(&cache, "acme", &[resolved("A-1", "K-1")]);
        assert_eq!(
            hits(&cache, "acme", &["A-1", "A-2"]),
            [Some("K-1".into()), None]
        );

        cache.hear(Heard::Deaf);
        assert_eq!(hits(&cache, "acme", &["A-1"]), [None]);
        keep_now(&cache, "acme", &[resolved("A-1", "K-1")]);
        cache.hear(Heard::Listening);
        assert_eq!(
            hits(&cache, "acme", &["A-1"]),
            [None],
            "forgotten while deaf"
        );
    }

    #[test]
    fn a_change_forgets_its_client_only_and_a_read_that_raced_it_is_not_kept() {
        let cache = ResolutionCache::new(100);
        cache.hear(Heard::Listening);
        keep_now(&cache, "acme", &[resolved("A-1", "K-1")]);
        keep_now(&cache, "zeta", &[resolved("A-1", "Z-1")]);
        let raced_read = generation(&cache);

        cache.hear(Heard::Changed("acme".into()));
        keep(&cache, raced_read, "acme", &[resolved("A-1", "K-OLD")]);

        assert_eq!(hits(&cache, "acme", &["A-1"]), [None]);
        assert_eq!(hits(&cache, "zeta", &["A-1"]), [Some("Z-1".into())]);
        keep_now(&cache, "acme", &[resolved("A-1", "K-2")]);
        assert_eq!(hits(&cache, "acme", &["A-1"]), [Some("K-2".into())]);
    }

    #[test]
    fn a_full_cache_starts_over_and_a_cache_of_no_entries_keeps_nothing() {
        let cache = ResolutionCache::new(2);
        cache.hear(Heard::Listening);
        keep_now(
            &cache,
            "acme",
            &[resolved("A-1", "K-1"), resolved("A-2", "K-2")],
        );
        keep_now(&cache, "acme", &[resolved("A-3", "K-3")]);
        assert_eq!(
            hits(&cache, "acme", &["A-1", "A-2", "A-3"]),
            [None, None, Some("K-3".into())]
        );
        keep_now(&cache, "acme", &[resolved("A-3", "K-3")]);
        assert_eq!(
            cache.lock().entries,
            1,
            "a listing kept again is counted once"
        );

        let off = ResolutionCache::new(0);
        off.hear(Heard::Listening);
        keep_now(&off, "acme", &[resolved("A-1", "K-1")]);
        assert_eq!(hits(&off, "acme", &["A-1"]), [None]);
    }
}
