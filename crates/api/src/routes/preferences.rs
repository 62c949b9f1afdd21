//! Notification preferences: a user's own (`/v1/me/preferences`) and a
//! category's defaults (`/v1/categories/{category}`, service tokens).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use herald_domain::duration::Written;
use herald_domain::notification::{self as rules, UserId};
use herald_domain::preference::{CategoryDefaults, Channels, Choice};
use herald_platform::auth::{Authenticated, Principal};
use herald_platform::http::JsonBody;
use herald_platform::problem::Problem;
use herald_store::preferences::{self, Preferences};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::routes::inbox::user;
use crate::AppState;

/// The most categories one change may name.
pub const MAX_CATEGORIES_PER_CHANGE: usize = 100;

/// What the caller chooses for one category; a channel left out (or `null`)
/// follows the category's default.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelChoice {
    #[serde(default)]
    pub in_app: Option<bool>,
    #[serde(default)]
    pub web_push: Option<bool>,
}

/// The caller's choices, by category. Categories not listed keep what they were.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesChange {
    pub categories: BTreeMap<String, ChannelChoice>,
}

/// The caller's preferences: every category with defaults or a choice of
/// theirs, with what reaches them. Any other category reaches them on every
/// channel.
#[utoipa::path(
    get,
    path = "/v1/me/preferences",
    tag = "preferences",
    responses(
        (status = 200, description = "The caller's preferences", body = Preferences),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's `sub` is not a user id", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_preferences(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> ApiResult<Json<Preferences>> {
    let user = user(&principal)?;
    let mut conn = state.pool.acquire().await?;
    Ok(Json(preferences::of_user(&mut conn, &user).await?))
}

/// Changes the caller's preferences for the categories listed, and announces
/// the result on `user:{sub}` as `preferences.updated` (`{preferences}`), so
/// every open tab's settings panel stays current. A required category cannot
/// be muted: the change is a 422 naming it, and nothing is changed.
#[utoipa::path(
    put,
    path = "/v1/me/preferences",
    tag = "preferences",
    request_body = PreferencesChange,
    responses(
        (status = 200, description = "The caller's preferences after the change", body = Preferences),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's `sub` is not a user id", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid category, or a required one muted (named)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn put_preferences(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    JsonBody(req): JsonBody<PreferencesChange>,
) -> ApiResult<Json<Preferences>> {
    let user = UserId::parse(&user(&principal)?).map_err(Problem::forbidden)?;
    if req.categories.len() > MAX_CATEGORIES_PER_CHANGE {
        return Err(Problem::invalid_field(
            "categories",
            format!("at most {MAX_CATEGORIES_PER_CHANGE} categories per change"),
        )
        .into());
    }
    let mut choices = BTreeMap::new();
    for (category, c) in req.categories {
        rules::category(&category)
            .map_err(|m| Problem::invalid_field(format!("categories.{category}"), m))?;
        choices.insert(
            category,
            Choice {
                in_app: c.in_app,
                web_push: c.web_push,
            },
        );
    }
    let mut tx = state.outbox.begin().await?;
    match preferences::set_choices(&mut tx, &user, &choices).await? {
        Ok(prefs) => {
            tx.commit().await?;
            Ok(Json(prefs))
        }
        Err(refused) => {
            tx.rollback().await?;
            Err(Problem::invalid_field(format!("categories.{}", refused.category), refused.message).into())
        }
    }
}

/// A category's defaults.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategorySettings {
    /// Inbox entries on by default (default `true`).
    #[serde(default = "yes")]
    pub in_app: bool,
    /// Web Push on by default (default `true`).
    #[serde(default = "yes")]
    pub web_push: bool,
    /// Users cannot mute it (default `false`).
    #[serde(default)]
    pub required: bool,
    /// How long a push waits, e.g. `30s` (default `0s`, at most `7d`): a
    /// notification read or seen meanwhile is not pushed.
    #[serde(default)]
    #[schema(value_type = String, example = "30s")]
    pub push_delay: Written,
    /// How long a group stays open, e.g. `1h` (the default; `0s` turns
    /// grouping off, at most `30d`): notifications with the same
    /// `group_key` within this time of the group's first one join its inbox
    /// entry while it is unread.
    #[serde(default = "default_group_window")]
    #[schema(value_type = String, example = "1h")]
    pub group_window: Written,
}

fn yes() -> bool {
    true
}

fn default_group_window() -> Written {
    Written(herald_domain::preference::DEFAULT_GROUP_WINDOW)
}

impl From<CategoryDefaults> for CategorySettings {
    fn from(d: CategoryDefaults) -> Self {
        Self {
            in_app: d.channels.in_app,
            web_push: d.channels.web_push,
            required: d.required,
            push_delay: Written(d.push_delay),
            group_window: Written(d.group_window),
        }
    }
}

fn category_param(raw: &str) -> Result<(), Problem> {
    rules::category(raw).map_err(|m| Problem::invalid_field("category", m))
}

fn require_service(p: &Principal) -> Result<(), Problem> {
    if p.publish || p.admin {
        Ok(())
    } else {
        Err(Problem::forbidden(
            "category defaults are set by service tokens (`scope` with `publish` or `admin`)",
        ))
    }
}

/// Sets a category's defaults (replacing what was set).
#[utoipa::path(
    put,
    path = "/v1/categories/{category}",
    tag = "preferences",
    params(("category" = String, Path, description = "`[a-z][a-z0-9_.-]{0,63}`")),
    request_body = CategorySettings,
    responses(
        (status = 200, description = "The category's defaults", body = CategorySettings),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a service token", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid field (named)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn put_category(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(category): Path<String>,
    JsonBody(req): JsonBody<CategorySettings>,
) -> ApiResult<Json<CategorySettings>> {
    require_service(&principal)?;
    category_param(&category)?;
    CategoryDefaults::check_push_delay(req.push_delay.0)
        .map_err(|m| Problem::invalid_field("push_delay", m))?;
    CategoryDefaults::check_group_window(req.group_window.0)
        .map_err(|m| Problem::invalid_field("group_window", m))?;
    let d = CategoryDefaults {
        channels: Channels {
            in_app: req.in_app,
            web_push: req.web_push,
        },
        required: req.required,
        push_delay: req.push_delay.0,
        group_window: req.group_window.0,
    };
    let mut conn = state.pool.acquire().await?;
    preferences::set_defaults(&mut conn, &category, &d).await?;
    Ok(Json(d.into()))
}

/// A category's defaults (the built-in ones, if no service set any).
#[utoipa::path(
    get,
    path = "/v1/categories/{category}",
    tag = "preferences",
    params(("category" = String, Path, description = "`[a-z][a-z0-9_.-]{0,63}`")),
    responses(
        (status = 200, description = "The category's defaults", body = CategorySettings),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid category", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_category(
    State(state): State<AppState>,
    Authenticated(_principal): Authenticated,
    Path(category): Path<String>,
) -> ApiResult<Json<CategorySettings>> {
    category_param(&category)?;
    let mut conn = state.pool.acquire().await?;
    let d = preferences::defaults(&mut conn, &category)
        .await?
        .unwrap_or_default();
    Ok(Json(d.into()))
}
