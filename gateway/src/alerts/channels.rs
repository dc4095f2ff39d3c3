//! The channels, each behind [`Channel`]: a generic webhook, WeCom,
//! DingTalk and Feishu group robots, e-mail over SMTP, and the gateway's
//! MQTT topic. Each renders a [`Notice`]'s message in its vendor's format
//! and says whether the vendor accepted it. Only this module imports
//! `reqwest` and `lettre`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures::future::BoxFuture;
use gateway_core::alerts::{Message, Notice};
use gateway_core::config::{ChannelConfig, ChannelKind, Secret, SmtpTls};
use gateway_core::state::UnixMs;
use hmac::{Hmac, Mac};
use serde_json::{Value as Json, json};
use sha2::Sha256;
use tokio::sync::{mpsc, oneshot};

/// Why a delivery attempt failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying (network, 5xx, a vendor's error code, a timeout).
    #[error("{0}")]
    Retry(String),
    /// Retrying cannot help (no address to send to); given up at once.
    #[error("{0}")]
    Permanent(String),
}

/// One way of reaching people. `send` resolves when the channel has
/// accepted the message (HTTP 2xx and the vendor's success code, SMTP 250,
/// the MQTT outbox append).
pub trait Channel: Send + Sync + fmt::Debug {
    /// The channel's id.
    fn id(&self) -> &str;
    /// Its kind.
    fn kind(&self) -> ChannelKind;
    /// One delivery attempt.
    fn send<'a>(&'a self, n: &'a Notice, now_ms: UnixMs) -> BoxFuture<'a, Result<(), SendError>>;
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; new_from_slice cannot fail.
    match HmacSha256::new_from_slice(key) {
        Ok(mut m) => {
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// The webhook's signature of a body: `sha256=` + hex HMAC-SHA256 of the
/// body with the secret as key.
pub fn webhook_signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac(secret.as_bytes(), body)))
}

/// DingTalk's signature (加签): base64 of HMAC-SHA256 with the secret as
/// key over `timestamp + "\n" + secret`, timestamp in milliseconds; sent
/// URL-encoded as the query parameters `timestamp` and `sign`.
/// <https://open.dingtalk.com/document/robots/customize-robot-security-settings>
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    let msg = format!("{timestamp_ms}\n{secret}");
    base64::engine::general_purpose::STANDARD.encode(hmac(secret.as_bytes(), msg.as_bytes()))
}

/// Feishu's signature (签名校验): base64 of HMAC-SHA256 with
/// `timestamp + "\n" + secret` as the KEY over an empty message, timestamp
/// in seconds; sent in the body as `timestamp` and `sign`.
/// <https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot>
pub fn feishu_sign(secret: &str, timestamp_s: i64) -> String {
    let key = format!("{timestamp_s}\n{secret}");
    base64::engine::general_purpose::STANDARD.encode(hmac(key.as_bytes(), b""))
}

/// Markdown for the group robots: title in bold, one line per field, the
/// link, and who is paged.
fn markdown(m: &Message, mention: impl Fn(&gateway_core::alerts::Recipient) -> String) -> String {
    let mut s = format!("**{}**\n", m.title);
    for l in &m.lines {
        s.push_str("> ");
        s.push_str(l);
        s.push('\n');
    }
    if let Some(link) = &m.link {
        s.push_str(&format!("\n[{}]({link})\n", m.link_text));
    }
    let at: Vec<String> = m.to.iter().map(mention).filter(|s| !s.is_empty()).collect();
    if !at.is_empty() {
        s.push('\n');
        s.push_str(&at.join(" "));
    }
    s
}

/// Cuts a text to at most `max` bytes on a character boundary.
fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut i = max;
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        s.truncate(i);
    }
    s
}

/// An HTTP(S) channel: webhook, WeCom, DingTalk or Feishu.
#[derive(Debug)]
pub struct HttpChannel {
    id: String,
    kind: ChannelKind,
    url: String,
    secret: Option<Secret>,
    header: String,
    client: reqwest::Client,
    site: String,
    gateway: String,
}

impl HttpChannel {
    /// Builds the channel (no network).
    pub fn new(
        c: &ChannelConfig,
        secret: Option<Secret>,
        site: &str,
        gateway: &str,
    ) -> Result<HttpChannel, String> {
        // reqwest is built without a crypto provider: use ring, like MQTT.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(c.timeout.get())
            .connect_timeout(c.timeout.get().min(Duration::from_secs(10)))
            .user_agent(concat!("bms-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("channel {:?}: cannot build the HTTP client: {e}", c.id))?;
        Ok(HttpChannel {
            id: c.id.clone(),
            kind: c.kind,
            url: c.url.clone().unwrap_or_default(),
            secret,
            header: c.signature_header.clone(),
            client,
            site: site.to_owned(),
            gateway: gateway.to_owned(),
        })
    }

    /// The URL and JSON body of a notice at `now_ms`, as the vendor wants them.
    pub fn request(&self, n: &Notice, now_ms: UnixMs) -> (String, Json) {
        let m = &n.message;
        match self.kind {
            // https://developer.work.weixin.qq.com/document/path/91770 (markdown, content ≤ 4096 bytes)
            ChannelKind::Wecom => (
                self.url.clone(),
                json!({
                    "msgtype": "markdown",
                    "markdown": {"content": cut(markdown(m, |r| format!("@{}", r.name)), 4096)}
                }),
            ),
            // https://open.dingtalk.com/document/robots/custom-robot-access (markdown + at.atMobiles;
            // the mobile must also appear as @mobile in the text)
            ChannelKind::Dingtalk => {
                let mobiles: Vec<String> = m.to.iter().filter_map(|r| r.mobile.clone()).collect();
                let text = markdown(m, |r| match &r.mobile {
                    Some(mob) => format!("@{mob}"),
                    None => format!("@{}", r.name),
                });
                let url = match &self.secret {
                    Some(s) => {
                        let sign = dingtalk_sign(s.expose(), now_ms);
                        let enc = percent_encoding::utf8_percent_encode(
                            &sign,
                            percent_encoding::NON_ALPHANUMERIC,
                        );
                        let sep = if self.url.contains('?') { '&' } else { '?' };
                        format!("{}{sep}timestamp={now_ms}&sign={enc}", self.url)
                    }
                    None => self.url.clone(),
                };
                (
                    url,
                    json!({
                        "msgtype": "markdown",
                        "markdown": {"title": m.title, "text": text},
                        "at": {"atMobiles": mobiles, "isAtAll": false}
                    }),
                )
            }
            // https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot (text message;
            // timestamp in seconds and sign in the body when signing is on)
            ChannelKind::Feishu => {
                let mut body = json!({
                    "msg_type": "text",
                    "content": {"text": m.text()}
                });
                if let Some(s) = &self.secret {
                    let ts = now_ms.div_euclid(1000);
                    body["timestamp"] = json!(ts.to_string());
                    body["sign"] = json!(feishu_sign(s.expose(), ts));
                }
                (self.url.clone(), body)
            }
            _ => (
                self.url.clone(),
                json!({
                    "site": self.site,
                    "gateway": self.gateway,
                    "key": n.key,
                    "kind": n.kind.as_str(),
                    "ticket": n.ticket,
                    "tier": n.tier,
                    "title": m.title,
                    "lines": m.lines,
                    "text": m.text(),
                    "link": m.link,
                    "urgent": m.urgent,
                    "to": m.to,
                    "ts": now_ms,
                }),
            ),
        }
    }

    async fn post(&self, n: &Notice, now_ms: UnixMs) -> Result<(), SendError> {
        let (url, body) = self.request(n, now_ms);
        let bytes = serde_json::to_vec(&body).map_err(|e| SendError::Permanent(e.to_string()))?;
        let mut req = self
            .client
            .post(&url)
            .header("content-type", "application/json; charset=utf-8")
            .header("x-bms-alert-key", n.key.as_str());
        if self.kind == ChannelKind::Webhook
            && let Some(s) = &self.secret
        {
            req = req.header(self.header.as_str(), webhook_signature(s.expose(), &bytes));
        }
        let resp = req.body(bytes).send().await.map_err(|e| {
            // The URL carries the robot's key or token: never in logs or the database.
            let e = e.without_url();
            let mut why = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(x) = src {
                why.push_str(": ");
                why.push_str(&x.to_string());
                src = x.source();
            }
            SendError::Retry(if e.is_timeout() {
                "timed out".to_owned()
            } else {
                why
            })
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(SendError::Retry(format!(
                "HTTP {}: {}",
                status.as_u16(),
                cut(text, 200)
            )));
        }
        if self.kind == ChannelKind::Webhook {
            return Ok(());
        }
        // The robots answer 200 with an error code in the body.
        let v: Json = serde_json::from_str(&text).unwrap_or(Json::Null);
        let code = v
            .get("errcode")
            .or_else(|| v.get("code"))
            .or_else(|| v.get("StatusCode"))
            .and_then(Json::as_i64);
        match code {
            Some(0) => Ok(()),
            Some(c) => Err(SendError::Retry(format!(
                "{} refused it: code {c}: {}",
                self.kind,
                v.get("errmsg")
                    .or_else(|| v.get("msg"))
                    .and_then(Json::as_str)
                    .unwrap_or("")
            ))),
            None => Err(SendError::Retry(format!(
                "{} answered without a result code: {}",
                self.kind,
                cut(text, 200)
            ))),
        }
    }
}

impl Channel for HttpChannel {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> ChannelKind {
        self.kind
    }
    fn send<'a>(&'a self, n: &'a Notice, now_ms: UnixMs) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(self.post(n, now_ms))
    }
}

/// E-mail over SMTP (lettre), one message to every paged person with an address.
pub struct EmailChannel {
    id: String,
    from: lettre::message::Mailbox,
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
}

impl fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailChannel")
            .field("id", &self.id)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl EmailChannel {
    /// Builds the channel (no network).
    pub fn new(
        c: &ChannelConfig,
        password: Option<Secret>,
        ca_pem: Option<&[u8]>,
    ) -> Result<EmailChannel, String> {
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::transport::smtp::client::{Tls, TlsParameters};
        let host = c.host.clone().unwrap_or_default();
        let from: lettre::message::Mailbox = c
            .from
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|e| format!("channel {:?}: from: {e}", c.id))?;
        let tls = |h: &str| {
            let mut b = TlsParameters::builder(h.to_owned());
            if let Some(pem) = ca_pem {
                let cert = lettre::transport::smtp::client::Certificate::from_pem(pem)
                    .map_err(|e| format!("channel {:?}: ca_file: {e}", c.id))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls()
                .map_err(|e| format!("channel {:?}: TLS setup for {h}: {e}", c.id))
        };
        let mut b = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(&host);
        b = match c.tls {
            SmtpTls::Starttls => b
                .port(c.port.unwrap_or(587))
                .tls(Tls::Required(tls(&host)?)),
            SmtpTls::Tls => b.port(c.port.unwrap_or(465)).tls(Tls::Wrapper(tls(&host)?)),
            SmtpTls::None => b.port(c.port.unwrap_or(25)).tls(Tls::None),
        };
        if let (Some(u), Some(p)) = (&c.username, password) {
            b = b.credentials(Credentials::new(u.clone(), p.expose().to_owned()));
        }
        b = b.timeout(Some(c.timeout.get()));
        Ok(EmailChannel {
            id: c.id.clone(),
            from,
            transport: b.build(),
        })
    }

    /// The e-mail of a notice (UTF-8 subject and plain-text body).
    pub fn email(&self, n: &Notice) -> Result<lettre::Message, SendError> {
        let m = &n.message;
        let mut b = lettre::Message::builder()
            .from(self.from.clone())
            .subject(m.title.clone())
            .header(lettre::message::header::ContentType::TEXT_PLAIN);
        let mut any = false;
        for r in &m.to {
            let Some(addr) = &r.email else { continue };
            let Ok(a) = addr.parse() else { continue };
            b = b.to(lettre::message::Mailbox::new(Some(r.name.clone()), a));
            any = true;
        }
        if !any {
            return Err(SendError::Permanent(
                "nobody paged has an e-mail address ([[alerts.person]] email)".to_owned(),
            ));
        }
        b.body(m.text())
            .map_err(|e| SendError::Permanent(format!("cannot build the e-mail: {e}")))
    }
}

impl Channel for EmailChannel {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }
    fn send<'a>(&'a self, n: &'a Notice, _now_ms: UnixMs) -> BoxFuture<'a, Result<(), SendError>> {
        use lettre::AsyncTransport as _;
        Box::pin(async move {
            let email = self.email(n)?;
            self.transport
                .send(email)
                .await
                .map(|_| ())
                .map_err(|e| SendError::Retry(format!("SMTP: {e}")))
        })
    }
}

/// A notice for the MQTT topic `…/alert`, and where to say it was appended
/// to the MQTT outbox.
#[derive(Debug)]
pub struct MqttAlert {
    /// The payload (without `seq`).
    pub body: crate::wire::Body,
    /// `true` once the outbox holds it.
    pub done: oneshot::Sender<bool>,
}

/// The gateway's MQTT topic `…/alert`, through the run loop's outbox
/// (delivered to the broker like every other message, across restarts).
#[derive(Debug)]
pub struct MqttChannel {
    id: String,
    tx: mpsc::Sender<MqttAlert>,
}

impl MqttChannel {
    /// A channel handing alerts to the run loop.
    pub fn new(id: &str, tx: mpsc::Sender<MqttAlert>) -> MqttChannel {
        MqttChannel {
            id: id.to_owned(),
            tx,
        }
    }
}

/// The `alert` payload: `{"ts","key","kind","ticket","tier","title","lines","link","urgent","to"}`.
pub fn mqtt_body(n: &Notice, now_ms: UnixMs) -> crate::wire::Body {
    let m = &n.message;
    let v = json!({
        "ts": now_ms,
        "key": n.key,
        "kind": n.kind.as_str(),
        "ticket": n.ticket,
        "tier": n.tier,
        "title": m.title,
        "lines": m.lines,
        "link": m.link,
        "urgent": m.urgent,
        "to": m.to.iter().map(|r| json!({"id": r.id, "name": r.name})).collect::<Vec<_>>(),
    });
    match v {
        Json::Object(o) => o,
        _ => crate::wire::Body::new(),
    }
}

impl Channel for MqttChannel {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> ChannelKind {
        ChannelKind::Mqtt
    }
    fn send<'a>(&'a self, n: &'a Notice, now_ms: UnixMs) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let (done, rx) = oneshot::channel();
            self.tx
                .send(MqttAlert {
                    body: mqtt_body(n, now_ms),
                    done,
                })
                .await
                .map_err(|_| SendError::Retry("the MQTT side is not running".to_owned()))?;
            match rx.await {
                Ok(true) => Ok(()),
                _ => Err(SendError::Retry(
                    "the MQTT outbox did not take it".to_owned(),
                )),
            }
        })
    }
}

/// Shared handle to a channel.
pub type ChannelRef = Arc<dyn Channel>;
