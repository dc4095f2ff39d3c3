//! Security headers on every response: a strict Content-Security-Policy
//! (scripts, styles, images, fonts and connections from the dashboard
//! itself only; no inline script, no inline style), `nosniff`, no
//! `Referer` to other sites, and no framing unless an embedding origin is
//! configured (`[http] frame_ancestor`).
//!
//! A page with inline `<style>` elements (the monthly report, which must
//! stay one self-contained printable file) marks its response with
//! [`allow_inline_styles`]: the policy of that response then allows those
//! styles by their SHA-256 hash, and nothing else inline.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The policy of every response but `frame-ancestors` and inline styles.
const BASE: &str = "default-src 'none'; script-src 'self'; img-src 'self' data:; \
                    connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'";

/// The headers of every response, built once from the settings.
#[derive(Clone, Debug)]
pub struct Policy {
    /// `'none'` or the configured origin.
    frame_ancestors: String,
    /// `X-Frame-Options: DENY` when no embedding origin is configured
    /// (older browsers ignore `frame-ancestors`).
    deny_frames: bool,
}

/// The hashes of a response's inline `<style>` elements.
#[derive(Clone, Debug)]
struct InlineStyles(Vec<String>);

impl Policy {
    /// The policy for an optional embedding origin (checked by the config).
    pub fn new(frame_ancestor: Option<&str>) -> Policy {
        Policy {
            frame_ancestors: frame_ancestor.unwrap_or("'none'").to_owned(),
            deny_frames: frame_ancestor.is_none(),
        }
    }

    /// The Content-Security-Policy, allowing these style hashes inline.
    pub fn csp(&self, style_hashes: &[String]) -> String {
        let mut style = String::from("style-src 'self'");
        for h in style_hashes {
            style.push_str(" 'sha256-");
            style.push_str(h);
            style.push('\'');
        }
        format!("{BASE}; {style}; frame-ancestors {}", self.frame_ancestors)
    }
}

/// The base64 SHA-256 of the text of every `<style>` element of `html`.
pub fn style_hashes(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find("<style>") {
        let after = &rest[open + "<style>".len()..];
        let Some(close) = after.find("</style>") else {
            break;
        };
        let body = &after[..close];
        out.push(base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body.as_bytes())));
        rest = &after[close..];
    }
    out
}

/// Lets the `<style>` elements of `html` (the response's body) apply.
pub fn allow_inline_styles(response: &mut Response, html: &str) {
    response
        .extensions_mut()
        .insert(InlineStyles(style_hashes(html)));
}

/// Middleware: adds the headers to every response (pages, API, assets,
/// errors, event streams).
pub async fn add(State(policy): State<Arc<Policy>>, req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let hashes = r
        .extensions_mut()
        .remove::<InlineStyles>()
        .map(|s| s.0)
        .unwrap_or_default();
    apply(&policy, &hashes, r.headers_mut());
    r
}

/// Sets the headers on `headers`.
pub fn apply(policy: &Policy, style_hashes: &[String], headers: &mut axum::http::HeaderMap) {
    if let Ok(v) = HeaderValue::from_str(&policy.csp(style_hashes)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if policy.deny_frames {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    } else {
        headers.remove(header::X_FRAME_OPTIONS);
    }
}

/// The headers as raw lines, for answers written outside the router
/// (the refusal of a connection over the cap).
pub fn raw_lines(policy: &Policy) -> String {
    let mut h = axum::http::HeaderMap::new();
    apply(policy, &[], &mut h);
    h.iter()
        .filter_map(|(k, v)| Some(format!("{k}: {}\r\n", v.to_str().ok()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_default_policy_allows_nothing_inline_and_no_framing() {
        let p = Policy::new(None);
        let csp = p.csp(&[]);
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self';",
            "img-src 'self' data:",
            "connect-src 'self'",
            "font-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(part), "{part} missing in {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        let lines = raw_lines(&p);
        assert!(lines.contains("x-frame-options: DENY\r\n"), "{lines}");
        assert!(
            lines.contains("x-content-type-options: nosniff\r\n"),
            "{lines}"
        );
        assert!(
            lines.contains("referrer-policy: no-referrer\r\n"),
            "{lines}"
        );
    }

    #[test]
    fn an_embedding_origin_replaces_the_frame_ban() {
        let p = Policy::new(Some("https://portal.example.com"));
        assert!(
            p.csp(&[])
                .ends_with("frame-ancestors https://portal.example.com")
        );
        assert!(!raw_lines(&p).contains("x-frame-options"));
    }

    #[test]
    fn inline_styles_are_allowed_by_their_hash_only() {
        // printf 'p{color:red}' | openssl dgst -sha256 -binary | base64
        let html =
            "<html><head><style>p{color:red}</style></head><body><p style=\"x\">a</p></body>";
        let h = style_hashes(html);
        assert_eq!(h, ["p0bF+un5yUb9MBO6xRb8kPHlY2BdpHVtLiFkDrZPF64="]);
        let csp = Policy::new(None).csp(&h);
        assert!(
            csp.contains("style-src 'self' 'sha256-p0bF+un5yUb9MBO6xRb8kPHlY2BdpHVtLiFkDrZPF64='"),
            "{csp}"
        );
        assert!(style_hashes("<p>no style</p>").is_empty());
    }
}
