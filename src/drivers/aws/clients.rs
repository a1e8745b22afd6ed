//! The AWS clients the driver calls through, built once from aws-config's default chain
//! (credentials from the environment, profiles, SSO, instance and container roles — nothing
//! hand-rolled), the target's region and endpoint, the SDK's adaptive retry mode (it backs off
//! on throttling by itself) and timeouts per attempt and per call (a hung call must not hang a
//! revert past its deadline). Every operation any client sends passes one interceptor that
//! logs it (`-vv`) and records its IAM action, so a test can hold the least-privilege policy
//! (docs/aws-iam-policy.json) against what the driver really called.
//!
//! Errors become [`DriverError`]s here, in one place: throttling and transport failures are
//! retryable, `AccessDenied` names the IAM action that is missing, anything else is permanent
//! and says the API's own code and message.

use std::collections::BTreeSet;
use std::sync::Mutex;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::fault::DriverError;

/// Attempts per API call, throttling included (the adaptive mode's token bucket paces them).
const MAX_ATTEMPTS: u32 = 8;

pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub asg: aws_sdk_autoscaling::Client,
    pub rds: aws_sdk_rds::Client,
    pub cache: aws_sdk_elasticache::Client,
    pub sts: aws_sdk_sts::Client,
}

/// IAM actions (`ec2:StopInstances`) called by any client in this process: what the policy
/// test reads.
static CALLED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Every IAM action the aws clients of this process have called so far.
pub fn called_actions() -> BTreeSet<String> {
    CALLED.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The IAM prefix of an SDK service name ("Auto Scaling" → "autoscaling").
pub fn iam_prefix(service: &str) -> String {
    match service {
        "Auto Scaling" => "autoscaling".into(),
        s => s.to_ascii_lowercase().replace(' ', ""),
    }
}

#[derive(Debug)]
struct Record;

impl Intercept for Record {
    fn name(&self) -> &'static str {
        "chaos-record-operations"
    }

    // Before serialization, not before execution: the operation's metadata is in the config
    // bag only once its runtime plugins have run.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if let Some(m) = cfg.load::<Metadata>() {
            let action = format!("{}:{}", iam_prefix(m.service()), m.name());
            tracing::debug!(action = %action, "aws call");
            CALLED
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(action);
        }
        Ok(())
    }
}

impl Clients {
    pub async fn new(region: &str, endpoint_url: Option<&str>) -> Clients {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .retry_config(RetryConfig::adaptive().with_max_attempts(MAX_ATTEMPTS))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_secs(10))
                    .operation_attempt_timeout(std::time::Duration::from_secs(30))
                    .operation_timeout(std::time::Duration::from_secs(120))
                    .build(),
            );
        if let Some(e) = endpoint_url {
            loader = loader.endpoint_url(e);
        }
        let conf = loader.load().await;
        Clients {
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(&conf)
                    .interceptor(Record)
                    .build(),
            ),
            asg: aws_sdk_autoscaling::Client::from_conf(
                aws_sdk_autoscaling::config::Builder::from(&conf)
                    .interceptor(Record)
                    .build(),
            ),
            rds: aws_sdk_rds::Client::from_conf(
                aws_sdk_rds::config::Builder::from(&conf)
                    .interceptor(Record)
                    .build(),
            ),
            cache: aws_sdk_elasticache::Client::from_conf(
                aws_sdk_elasticache::config::Builder::from(&conf)
                    .interceptor(Record)
                    .build(),
            ),
            sts: aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::from(&conf)
                    .interceptor(Record)
                    .build(),
            ),
        }
    }
}

/// Error codes AWS answers when a caller is going too fast.
const THROTTLED: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
];
/// Error codes of a state that passes (the resource is busy, the service briefly unwell).
const TRANSIENT: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
    "ResourceContention",
    "ScalingActivityInProgress",
    "DependencyViolation",
    "IncorrectInstanceState",
    "InvalidDBClusterStateFault",
    "InvalidDBInstanceState",
    "InvalidReplicationGroupState",
];
const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthFailure",
];

/// A failed API call as a driver error. `action` is the IAM action (`ec2:StopInstances`),
/// `what` the resource it was for.
pub fn api_err<E>(action: &str, what: &str, e: SdkError<E, HttpResponse>) -> DriverError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let shown = if what.is_empty() {
        action.to_string()
    } else {
        format!("{action} {what}")
    };
    match &e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("").to_string();
            let msg = err.message().unwrap_or("").to_string();
            let status = se.raw().status().as_u16();
            if THROTTLED.contains(&code.as_str()) {
                return DriverError::retryable(format!("{shown}: throttled ({code}: {msg})"));
            }
            if DENIED.contains(&code.as_str()) {
                return DriverError::Permanent(format!(
                    "{shown}: access denied ({code}): the IAM policy of these credentials needs \
                     `{action}` on this resource (docs/aws-iam-policy.json is the least-privilege \
                     policy)"
                ));
            }
            if TRANSIENT.contains(&code.as_str()) || (status >= 500 && !code.is_empty()) {
                return DriverError::retryable(format!("{shown}: {code}: {msg}"));
            }
            if code.is_empty() {
                // No error code: not an AWS API answer (an emulator's HTML error page, a proxy).
                return DriverError::Permanent(format!(
                    "{shown}: the API answered with an error it did not name ({})",
                    cut(&format!("{:?}", se.raw()), 160)
                ));
            }
            DriverError::Permanent(format!("{shown}: {code}: {msg}"))
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            DriverError::retryable(format!("{shown}: {}", chain(&e)))
        }
        SdkError::ResponseError(_) => DriverError::retryable(format!(
            "{shown}: the answer could not be read ({})",
            chain(&e)
        )),
        _ => DriverError::Permanent(format!("{shown}: {}", chain(&e))),
    }
}

/// The error code of a failed call, if the API named one.
pub fn code_of<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(se) => se.err().code(),
        _ => None,
    }
}

/// At most `n` characters of `s` (an HTML error page is not a message).
fn cut(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        parts.push(c.to_string());
        cause = c.source();
    }
    parts.join(": ")
}
