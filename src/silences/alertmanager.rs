//! Alertmanager's silence API (v2): list, create or update, expire. One cluster, whose
//! members are tried in order until one answers.

use serde::{Deserialize, Serialize};

use crate::config::{AlertmanagerConfig, MatchOp, Matcher};
use crate::outbound::{self, Client};
use crate::time::Timestamp;

/// A call Alertmanager did not take. The URL named is the configured one: credentials are
/// never in it (the configuration refuses them).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AmError {
    #[error("{url}: {error}")]
    Unreachable { url: String, error: String },
    #[error("{url} answered {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{0}")]
    Client(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<AmMatcher>,
    pub starts_at: String,
    pub ends_at: String,
    pub created_by: String,
    pub comment: String,
    pub status: SilenceStatus,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SilenceStatus {
    pub state: String,
}

impl Silence {
    /// Active or pending: expired silences stay listed for a while, and are history.
    pub fn is_live(&self) -> bool {
        self.status.state != "expired"
    }

    pub fn ends_at(&self) -> Option<Timestamp> {
        self.ends_at.parse().ok()
    }

    /// When it was made: Alertmanager moves a start in the past to the moment it took the
    /// silence, and an update in place keeps it.
    pub fn made_at(&self) -> Option<Timestamp> {
        self.starts_at.parse().ok()
    }

    /// Its matchers as dbvigil's, sorted, to compare with the ones a window wants.
    pub fn matchers(&self) -> Vec<Matcher> {
        let mut out: Vec<Matcher> = self
            .matchers
            .iter()
            .map(|m| Matcher {
                name: m.name.clone(),
                op: match (m.is_regex, m.is_equal.unwrap_or(true)) {
                    (false, true) => MatchOp::Equal,
                    (false, false) => MatchOp::NotEqual,
                    (true, true) => MatchOp::Regex,
                    (true, false) => MatchOp::NotRegex,
                },
                value: m.value.clone(),
            })
            .collect();
        out.sort();
        out
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AmMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    /// Absent in answers of Alertmanagers before 0.22: they had only `=` and `=~`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_equal: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostSilence<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    pub matchers: Vec<AmMatcher>,
    pub starts_at: String,
    pub ends_at: String,
    pub created_by: &'a str,
    pub comment: &'a str,
}

pub fn am_matchers(matchers: &[Matcher]) -> Vec<AmMatcher> {
    matchers
        .iter()
        .map(|m| AmMatcher {
            name: m.name.clone(),
            value: m.value.clone(),
            is_regex: m.op.is_regex(),
            is_equal: Some(m.op.is_equal()),
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    #[serde(rename = "silenceID")]
    silence_id: String,
}

/// The cluster member that answered, and the client to it.
pub struct Cluster {
    client: Client,
    urls: Vec<url::Url>,
}

impl Cluster {
    pub fn new(config: &AlertmanagerConfig) -> Result<Cluster, AmError> {
        let client = Client::new(&config.http, config.timeout)
            .map_err(|e| AmError::Client(e.to_string()))?;
        Ok(Cluster {
            client,
            urls: config.urls.clone(),
        })
    }

    /// Every silence, from the first member that answers; returns that member.
    pub async fn list(&self) -> Result<(usize, Vec<Silence>), AmError> {
        let mut last = None;
        for (i, base) in self.urls.iter().enumerate() {
            let request = self
                .client
                .request(reqwest::Method::GET, endpoint(base, "api/v2/silences"));
            match send(base, request).await {
                Ok(body) => {
                    let silences = serde_json::from_str(&body).map_err(|e| AmError::Refused {
                        url: base.to_string(),
                        status: 200,
                        body: format!("not a silence list ({e}): is this an Alertmanager?"),
                    })?;
                    return Ok((i, silences));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("the configuration has at least one URL"))
    }

    /// Creates a silence, or updates `post.id`'s; returns the silence's id (Alertmanager
    /// may give an updated silence a new one).
    pub async fn post(&self, member: usize, post: &PostSilence<'_>) -> Result<String, AmError> {
        let base = &self.urls[member];
        let request = self
            .client
            .request(reqwest::Method::POST, endpoint(base, "api/v2/silences"))
            .json(post);
        let body = send(base, request).await?;
        let created: Created = serde_json::from_str(&body).map_err(|e| AmError::Refused {
            url: base.to_string(),
            status: 200,
            body: format!("no silence id in the answer ({e})"),
        })?;
        Ok(created.silence_id)
    }

    pub async fn expire(&self, member: usize, id: &str) -> Result<(), AmError> {
        let base = &self.urls[member];
        let request = self.client.request(
            reqwest::Method::DELETE,
            endpoint(base, &format!("api/v2/silence/{id}")),
        );
        send(base, request).await.map(|_| ())
    }

    pub fn url(&self, member: usize) -> &url::Url {
        &self.urls[member]
    }
}

/// `path` under the base URL, keeping a route prefix (`http://host/alertmanager/`).
fn endpoint(base: &url::Url, path: &str) -> url::Url {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    url.set_path(&format!("{prefix}/{path}"));
    url
}

async fn send(base: &url::Url, request: reqwest::RequestBuilder) -> Result<String, AmError> {
    let unreachable = |e: reqwest::Error| AmError::Unreachable {
        url: base.to_string(),
        error: outbound::describe(&e),
    };
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    let body = response.text().await.map_err(unreachable)?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(AmError::Refused {
            url: base.to_string(),
            status: status.as_u16(),
            body: body.trim().chars().take(300).collect(),
        })
    }
}
