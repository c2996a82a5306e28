//! A deployed stack as `login` and `doctor` need it: its parameters (the two secrets'
//! ARNs, the tenant, the Dataverse URL), its webhook URL output, and an AWS configuration.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use clap::Args;
use cosell::store::aws_local;

use crate::ops::OpsError;

#[derive(Debug, Clone, Default, Args)]
pub struct AwsArgs {
    /// A deployed stack: its secrets and settings come from its parameters.
    #[arg(long, value_name = "NAME")]
    pub stack: Option<String>,
    /// AWS region [default: from the AWS environment or profile].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Send AWS calls to a local emulator (e.g. moto) at this URL, with dummy credentials.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StackInfo {
    pub pc_secret_arn: Option<String>,
    pub dv_secret_arn: Option<String>,
    pub tenant_id: Option<String>,
    pub dataverse_url: Option<String>,
    pub webhook_url: Option<String>,
}

impl AwsArgs {
    pub async fn sdk_config(&self) -> SdkConfig {
        if let Some(endpoint) = &self.endpoint_url {
            let region = self.region.clone().unwrap_or_else(|| "us-east-1".into());
            return aws_local::sdk_config(endpoint, &region).await;
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(30))
                .build(),
        );
        if let Some(r) = &self.region {
            loader = loader.region(Region::new(r.clone()));
        }
        loader.load().await
    }
}

/// Reads the stack's parameters and outputs (names as in template.yaml).
pub async fn describe(sdk: &SdkConfig, stack: &str) -> Result<StackInfo, OpsError> {
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let described = cfn
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| {
            OpsError::failed(format!(
                "cannot describe stack {stack}: {}",
                aws_sdk_cloudformation::error::DisplayErrorContext(e)
            ))
        })?;
    let Some(s) = described.stacks().first() else {
        return Err(OpsError::failed(format!("no stack named {stack}")));
    };
    let param = |key: &str| {
        s.parameters()
            .iter()
            .find(|p| p.parameter_key() == Some(key))
            .and_then(|p| p.parameter_value())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let output = |key: &str| {
        s.outputs()
            .iter()
            .find(|o| o.output_key() == Some(key))
            .and_then(|o| o.output_value())
            .map(str::to_string)
    };
    Ok(StackInfo {
        pc_secret_arn: param("PartnerCenterSecretArn"),
        dv_secret_arn: param("DataverseSecretArn"),
        tenant_id: param("TenantId"),
        dataverse_url: param("DataverseUrl"),
        webhook_url: output("WebhookUrl"),
    })
}

/// What a stack's secrets and parameters set, as `COSELL_*` overrides.
pub struct StackSettings {
    pub overrides: Vec<(String, String)>,
    /// The Partner Center secret as read (its version dates the refresh token).
    pub pc_secret: cosell_edge::secrets::VersionedSecret,
    pub pc_arn: String,
}

/// Reads both secrets the stack names and turns them, with its tenant, Dataverse URL and
/// webhook URL, into the settings they stand for (as the functions do at cold start).
pub async fn settings(
    sm: &aws_sdk_secretsmanager::Client,
    name: &str,
    info: &StackInfo,
) -> Result<StackSettings, OpsError> {
    use cosell_edge::secrets::{read_current, read_secret, settings_from};
    use cosell_edge::secrets::{DATAVERSE_KEYS, PARTNER_CENTER_KEYS};
    let (Some(pc_arn), Some(dv_arn)) = (info.pc_secret_arn.clone(), info.dv_secret_arn.clone())
    else {
        return Err(OpsError::failed(format!(
            "stack {name} names no PartnerCenterSecretArn/DataverseSecretArn parameters"
        )));
    };
    let fail = |e: cosell_edge::EdgeError| OpsError::failed(e.to_string());
    let pc = read_current(sm, &pc_arn).await.map_err(fail)?;
    let dv = read_secret(sm, &dv_arn).await.map_err(fail)?;
    let mut overrides = settings_from(&pc_arn, &pc.value, &PARTNER_CENTER_KEYS).map_err(fail)?;
    overrides.extend(settings_from(&dv_arn, &dv, &DATAVERSE_KEYS).map_err(fail)?);
    for (k, v) in [
        ("COSELL_TENANT_ID", &info.tenant_id),
        ("COSELL_DATAVERSE_URL", &info.dataverse_url),
        ("COSELL_WEBHOOK_URL", &info.webhook_url),
    ] {
        if let Some(v) = v {
            overrides.push((k.to_string(), v.clone()));
        }
    }
    Ok(StackSettings {
        overrides,
        pc_secret: pc,
        pc_arn,
    })
}
