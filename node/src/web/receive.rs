//! The HTTP side of uploads from a phone's browser: the page, the check, the chunks
//! ([`super::upload`] keeps the files).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::{PageError, Session, Shared, pages, refuse, upload};

pub(super) async fn upload_page(
    State(web): State<Shared>,
    session: Session,
) -> Result<Html<String>, PageError> {
    let vault = web.with_home(|home| home.keys.current().is_none()).await?;
    Ok(Html(pages::upload(vault, &session).into_string()))
}

fn json_answer<T: serde::Serialize>(code: StatusCode, value: &T) -> Response {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "{}".into());
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn upload_failed(e: &upload::UploadError) -> Response {
    let code = match e {
        upload::UploadError::Bad(_) => StatusCode::BAD_REQUEST,
        upload::UploadError::Offset { .. } | upload::UploadError::Busy => StatusCode::CONFLICT,
        upload::UploadError::Damaged => StatusCode::UNPROCESSABLE_ENTITY,
        upload::UploadError::Vault => StatusCode::FORBIDDEN,
        upload::UploadError::NoRoom { .. } => StatusCode::INSUFFICIENT_STORAGE,
        upload::UploadError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let have = match e {
        upload::UploadError::Offset { have } => Some(*have),
        _ => None,
    };
    json_answer(
        code,
        &serde_json::json!({ "error": e.to_string(), "have": have }),
    )
}

pub(super) async fn upload_check(State(web): State<Shared>, body: axum::body::Bytes) -> Response {
    let picks: Vec<upload::Pick> = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return upload_failed(&upload::UploadError::Bad(format!(
                "not a list of picks: {e}"
            )));
        }
    };
    match web.with_home(move |home| upload::check(home, &picks)).await {
        Ok(Ok(states)) => json_answer(StatusCode::OK, &states),
        Ok(Err(e)) => upload_failed(&e),
        Err(e) => e.into_response(),
    }
}

fn header_text(headers: &axum::http::HeaderMap, name: &str) -> Result<String, upload::UploadError> {
    let raw = headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| upload::UploadError::Bad(format!("the header {name} is missing")))?;
    upload::percent_decode(raw).ok_or_else(|| {
        upload::UploadError::Bad(format!("the header {name} is not percent-encoded UTF-8"))
    })
}

fn header_number(headers: &axum::http::HeaderMap, name: &str) -> Result<u64, upload::UploadError> {
    header_text(headers, name)?
        .parse()
        .map_err(|_| upload::UploadError::Bad(format!("the header {name} is not a number")))
}

pub(super) async fn upload_chunk(
    State(web): State<Shared>,
    axum::extract::Path(hash): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let chunk = (|| {
        Ok::<_, upload::UploadError>(upload::Chunk {
            hash: upload::parse_hash(&hash)?,
            offset: header_number(&headers, "x-upload-offset")?,
            size: header_number(&headers, "x-upload-size")?,
            name: header_text(&headers, "x-upload-name")?,
            mtime_ms: header_number(&headers, "x-upload-mtime")?,
            device: header_text(&headers, "x-upload-device")?,
        })
    })();
    let chunk = match chunk {
        Ok(c) => c,
        Err(e) => return upload_failed(&e),
    };
    let home_path = web.home_path.clone();
    let receiver = web.clone();
    let hash = chunk.hash;
    let appended = tokio::task::spawn_blocking(move || {
        let (have, whole) = upload::append(&home_path, &receiver.receiving, &chunk, &body)?;
        if whole {
            upload::verify_whole(&home_path, &chunk.hash)?;
        }
        Ok::<_, upload::UploadError>((have, whole))
    })
    .await;
    let (have, whole) = match appended {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => return upload_failed(&e),
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let mut done = upload::ChunkDone {
        have,
        placed: None,
        recorded: false,
    };
    if whole {
        let (folder, selection) = (web.uploads.clone(), web.selection.clone());
        match web
            .with_home(move |home| upload::place(home, &hash, &folder, &selection))
            .await
        {
            Ok(Ok((placed, recorded))) => {
                done.placed = Some(placed);
                done.recorded = recorded;
                web.node.announce();
            }
            Ok(Err(e)) => return upload_failed(&e),
            Err(e) => return e.into_response(),
        }
    }
    json_answer(StatusCode::OK, &done)
}
