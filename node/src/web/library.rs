//! The photos section (the newest photos, their thumbnails, the photos below the goal) and
//! the trash.

use axum::extract::{Form, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use photomesh_protocol::record::RecordId;

use super::{PageError, Session, Shared, pages, refuse};

/// How many of the newest photos the photo page shows.
const NEWEST: usize = 60;

pub(super) async fn photos(
    State(web): State<Shared>,
    session: Session,
) -> Result<Html<String>, PageError> {
    let targets = web.targets;
    let (newest, status, vault) = web
        .with_home(move |home| {
            let vault = home.keys.current().is_none();
            let newest = if vault {
                Ok(Vec::new())
            } else {
                crate::library::status::newest(home, NEWEST, targets.verified_within)
            };
            (
                newest,
                crate::library::status::status_with(home, targets),
                vault,
            )
        })
        .await?;
    let err = |e: crate::index::IndexError| PageError::internal(e.to_string());
    let (newest, status) = (newest.map_err(err)?, status.map_err(err)?);
    Ok(Html(
        pages::photos(&newest, &status, vault, &session).into_string(),
    ))
}

pub(super) async fn thumb(
    State(web): State<Shared>,
    axum::extract::Path(record): axum::extract::Path<String>,
) -> Response {
    let id = hex::decode(record.trim_end_matches(".jpg"))
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(RecordId);
    let Some(id) = id else {
        return refuse(StatusCode::NOT_FOUND, "no such photo");
    };
    // The home is held only to read; the picture decodes without it.
    let made = match web
        .with_home(move |home| crate::library::thumbs::prepare(home, &id))
        .await
    {
        Ok(Ok(prepared)) => tokio::task::spawn_blocking(move || prepared.finish())
            .await
            .map_err(|e| PageError::internal(e.to_string())),
        Ok(Err(e)) => Ok(Err(e)),
        Err(e) => Err(e),
    };
    match made {
        Ok(Ok(jpeg)) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "private, max-age=86400"),
            ],
            jpeg,
        )
            .into_response(),
        Ok(Err(e)) => refuse(StatusCode::NOT_FOUND, &e.to_string()),
        Err(e) => e.into_response(),
    }
}

pub(super) async fn trash(
    State(web): State<Shared>,
    session: Session,
) -> Result<Html<String>, PageError> {
    let retention = web.targets.retention;
    let (list, vault) = web
        .with_home(move |home| {
            (
                crate::library::trash::list(home, retention),
                home.keys.current().is_none(),
            )
        })
        .await?;
    let list = list.map_err(|e| PageError::internal(e.to_string()))?;
    Ok(Html(pages::trash(&list, vault, &session).into_string()))
}

#[derive(serde::Deserialize)]
pub(super) struct RestoreForm {
    records: String,
}

pub(super) async fn trash_restore(
    State(web): State<Shared>,
    Form(form): Form<RestoreForm>,
) -> Result<Redirect, PageError> {
    let ids = form
        .records
        .split(',')
        .map(|r| {
            hex::decode(r.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .map(RecordId)
                .ok_or_else(|| PageError::bad(format!("{r:?} is not a record ID")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    web.with_home(move |home| {
        crate::library::trash::restore(
            home,
            &crate::library::restore::Selection::default(),
            &ids,
            false,
            false,
        )
    })
    .await?
    .map_err(|e| PageError::bad(e.to_string()))?;
    Ok(Redirect::to("/trash"))
}

pub(super) async fn trash_empty_page(
    State(web): State<Shared>,
    session: Session,
) -> Result<Html<String>, PageError> {
    let retention = web.targets.retention;
    let list = web
        .with_home(move |home| crate::library::trash::list(home, retention))
        .await?
        .map_err(|e| PageError::internal(e.to_string()))?;
    Ok(Html(pages::trash_empty_page(&list, &session).into_string()))
}

pub(super) async fn trash_empty(State(web): State<Shared>) -> Result<Redirect, PageError> {
    web.with_home(|home| crate::library::trash::empty(home, None, false))
        .await?
        .map_err(|e| PageError::bad(e.to_string()))?;
    Ok(Redirect::to("/trash"))
}
