//! The ETCHR HTTP service: router, handlers, limits, metrics and the OpenAPI document.
//!
//! The renderer lives in `etchr-ops`; the editing model will plug in through [`Planner`].
//! Start with [`AppState::new`] and [`router`] (for tests: `tower::ServiceExt::oneshot`) or
//! [`serve`] (for a listener).

pub mod app;
pub mod auth;
pub mod config;
pub mod engine;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod planner;
pub mod routes;
pub mod schema;
pub mod server;
pub mod state;
pub mod types;
pub mod upstream;

pub use app::router;
pub use config::Config;
pub use error::ApiError;
pub use planner::{PlanError, PlanRequest, Planner};
pub use server::{serve, shutdown_signal};
pub use state::AppState;
