//! One server and one browser shared by the tests of a test binary.
//!
//! Tests in one binary run on several threads at once; starting Chromium and `custody
//! serve` once for all of them saves seconds per test. The pair lives while any test
//! holds it and is dropped (browser and server killed) when the last one lets go, so
//! nothing outlives the binary; a test that runs after that starts a fresh pair.

use std::sync::{Arc, Mutex, Weak};

use crate::{Chromium, Error, LaunchOptions, Profile, Server, ServerOptions};

/// A server and a browser that trusts its TLS key.
pub struct Fixture {
    /// The browser (dropped before its profile).
    pub chromium: Chromium,
    /// Its profile directory.
    pub profile: Profile,
    /// The server.
    pub server: Server,
    /// How the browser was launched (to reopen it on the same profile).
    pub launch: LaunchOptions,
}

impl Fixture {
    /// Starts a fresh server, and a browser on a fresh profile trusting it.
    pub fn start() -> Result<Fixture, Error> {
        let server = Server::start(&ServerOptions::default())?;
        let profile = Profile::new()?;
        let launch = LaunchOptions { trust_spki: vec![server.spki.clone()], ..Default::default() };
        let chromium = Chromium::launch(&profile, &launch)?;
        Ok(Fixture { chromium, profile, server, launch })
    }
}

/// The binary's shared fixture, started by the first test that asks.
pub fn shared() -> Result<Arc<Fixture>, Error> {
    static SHARED: Mutex<Weak<Fixture>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(f) = slot.upgrade() {
        return Ok(f);
    }
    let f = Arc::new(Fixture::start()?);
    *slot = Arc::downgrade(&f);
    Ok(f)
}
