//! The devices section: the list, "add a device" (an invitation and its QR code), rename
//! and revoke.

use axum::extract::{Form, Query, State};
use axum::response::{Html, Redirect};
use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::membership::Role;

use super::{PageError, Session, Shared, pages};

pub(super) async fn devices(
    State(web): State<Shared>,
    session: Session,
) -> Result<Html<String>, PageError> {
    let live = web.node.live();
    let (devices, full) = web
        .with_home(move |home| {
            let mut devices = crate::mesh::devices(home)?;
            crate::library::status::apply_live_devices(&mut devices, Some(&live));
            let full = crate::mesh::my_role(home)? == Some(Role::Full);
            Ok::<_, crate::mesh::MeshError>((devices, full))
        })
        .await?
        .map_err(|e| PageError::internal(e.to_string()))?;
    Ok(Html(
        pages::devices(&devices, full, web.invitations.current().as_ref(), &session).into_string(),
    ))
}

#[derive(serde::Deserialize)]
pub(super) struct InviteForm {
    role: String,
    expires: String,
}

pub(super) async fn invite(
    State(web): State<Shared>,
    Form(form): Form<InviteForm>,
) -> Result<Redirect, PageError> {
    let role = match form.role.as_str() {
        "full" => Role::Full,
        "vault" => Role::Vault,
        other => {
            return Err(PageError::bad(format!(
                "{other:?} is not a role: full or vault"
            )));
        }
    };
    let expires = crate::home::config::parse_duration(&form.expires)
        .map_err(|e| PageError::bad(format!("expires: {e}")))?;
    let (min, max) = (
        photomesh_protocol::pairing::MIN_LIFETIME_S,
        photomesh_protocol::pairing::MAX_LIFETIME_S,
    );
    if !(min..=max).contains(&expires.as_secs()) {
        return Err(PageError::bad(
            "an invitation works for at least a minute and at most 7 days",
        ));
    }
    web.invitations.start(web.home_path.clone(), role, expires);
    Ok(Redirect::to("/devices/invite"))
}

pub(super) async fn invitation(
    State(web): State<Shared>,
    session: Session,
) -> Result<Html<String>, PageError> {
    let current = web.invitations.current();
    Ok(Html(
        pages::invitation_page(current.as_ref(), &session).into_string(),
    ))
}

pub(super) async fn cancel_invite(State(web): State<Shared>) -> Redirect {
    web.invitations.cancel();
    Redirect::to("/devices")
}

#[derive(serde::Deserialize)]
pub(super) struct DeviceForm {
    device: String,
}

fn device_id(text: &str) -> Result<DeviceId, PageError> {
    text.parse()
        .map_err(|_| PageError::bad(format!("{text:?} is not a device ID")))
}

/// The current member whose device ID is `text`.
async fn member(web: &Shared, text: &str) -> Result<crate::mesh::DeviceEntry, PageError> {
    let id = device_id(text)?.to_string();
    web.with_home(move |home| crate::mesh::devices(home))
        .await?
        .map_err(|e| PageError::internal(e.to_string()))?
        .into_iter()
        .find(|d| d.device_id == id && !d.revoked)
        .ok_or_else(|| PageError::bad("no such member"))
}

pub(super) async fn revoke_page(
    State(web): State<Shared>,
    session: Session,
    Query(form): Query<DeviceForm>,
) -> Result<Html<String>, PageError> {
    let entry = member(&web, &form.device).await?;
    Ok(Html(pages::revoke_page(&entry, &session).into_string()))
}

pub(super) async fn rename_page(
    State(web): State<Shared>,
    session: Session,
    Query(form): Query<DeviceForm>,
) -> Result<Html<String>, PageError> {
    let entry = member(&web, &form.device).await?;
    Ok(Html(pages::rename_page(&entry, &session).into_string()))
}

#[derive(serde::Deserialize)]
pub(super) struct RenameForm {
    device: String,
    name: String,
}

pub(super) async fn rename(
    State(web): State<Shared>,
    Form(form): Form<RenameForm>,
) -> Result<Redirect, PageError> {
    let id = device_id(&form.device)?;
    web.with_home(move |home| crate::mesh::rename(home, &id, &form.name, crate::clock::now_ms()))
        .await?
        .map_err(|e| PageError::bad(e.to_string()))?;
    Ok(Redirect::to("/devices"))
}

pub(super) async fn revoke(
    State(web): State<Shared>,
    Form(form): Form<DeviceForm>,
) -> Result<Html<String>, PageError> {
    let id = device_id(&form.device)?;
    let revoked = web
        .with_home(move |home| crate::mesh::revoke(home, &id, crate::clock::now_ms()))
        .await?
        .map_err(|e| PageError::bad(e.to_string()))?;
    Ok(Html(pages::revoked(&id, &revoked).into_string()))
}
