//! Mobile push (platform applications and endpoints) and SMS settings: resources kept
//! as AWS keeps them; what they would send goes to the outbox.

use super::errors::*;
use super::SnsService;
use crate::RequestContext;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sluice_engine::{Durable, OutboxEntry, StoreError};
use sluice_wire::AwsError;
use std::collections::BTreeMap;

/// Push platforms AWS supports.
const PLATFORMS: &[&str] = &["ADM", "APNS", "APNS_SANDBOX", "BAIDU", "GCM", "MPNS", "WNS"];
/// Credentials AWS never returns in GetPlatformApplicationAttributes.
const SECRET_ATTRIBUTES: &[&str] = &["PlatformCredential", "PlatformPrincipal"];
/// SMS settings SetSMSAttributes accepts.
const SMS_ATTRIBUTES: &[&str] = &[
    "MonthlySpendLimit",
    "DeliveryStatusIAMRole",
    "DeliveryStatusSuccessSamplingRate",
    "DefaultSenderID",
    "DefaultSMSType",
    "UsageReportS3Bucket",
];

const APP: &str = "platform-application";
const ENDPOINT: &str = "platform-endpoint";
const SMS: &str = "sms-attributes";
const OPTED_OUT: &str = "opted-out";
const SANDBOX: &str = "sandbox-number";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AppRequest {
    name: Option<String>,
    platform: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    platform_application_arn: Option<String>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EndpointRequest {
    platform_application_arn: Option<String>,
    endpoint_arn: Option<String>,
    token: Option<String>,
    custom_user_data: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SmsRequest {
    #[serde(default)]
    attributes: Option<Value>,
    phone_number: Option<String>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SandboxRequest {
    phone_number: Option<String>,
    one_time_password: Option<String>,
}

fn parse<T: for<'de> Deserialize<'de>>(input: Value) -> Result<T, AwsError> {
    serde_json::from_value(input).map_err(invalid_parameter)
}

fn req<'a>(v: &'a Option<String>, name: &str) -> Result<&'a str, AwsError> {
    v.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| missing_parameter(name))
}

fn attrs_of(v: &Value) -> Map<String, Value> {
    v.get("attributes").and_then(Value::as_object).cloned().unwrap_or_default()
}

/// E.164: a plus sign and up to 15 digits.
fn valid_phone(p: &str) -> bool {
    p.strip_prefix('+').is_some_and(|d| !d.is_empty() && d.len() <= 15 && d.chars().all(|c| c.is_ascii_digit()))
}

impl SnsService {
    async fn durable(&self, d: Result<Durable<()>, StoreError>) -> Result<(), AwsError> {
        d.map_err(from_store)?.wait().await.map_err(from_store)
    }

    /// Mobile push and SMS operations; `None` if `action` is not one of them.
    pub(super) async fn handle_mobile(
        &self,
        ctx: &RequestContext,
        action: &str,
        input: Value,
    ) -> Option<Result<Value, AwsError>> {
        Some(match action {
            "CreatePlatformApplication" => self.create_app(ctx, input).await,
            "GetPlatformApplicationAttributes" => self.get_app(input),
            "SetPlatformApplicationAttributes" => self.set_app(input).await,
            "DeletePlatformApplication" => self.delete_app(input).await,
            "ListPlatformApplications" => self.list_apps(ctx, input),
            "CreatePlatformEndpoint" => self.create_endpoint(input).await,
            "GetEndpointAttributes" => self.get_endpoint(input),
            "SetEndpointAttributes" => self.set_endpoint(input).await,
            "DeleteEndpoint" => self.delete_endpoint(input).await,
            "ListEndpointsByPlatformApplication" => self.list_endpoints(input),
            "GetSMSAttributes" => self.get_sms_attributes(ctx, input),
            "SetSMSAttributes" => self.set_sms_attributes(ctx, input).await,
            "CheckIfPhoneNumberIsOptedOut" => self.check_opted_out(ctx, input),
            "ListPhoneNumbersOptedOut" => self.list_opted_out(ctx, input),
            "OptInPhoneNumber" => self.opt_in(ctx, input).await,
            "CreateSMSSandboxPhoneNumber" => self.create_sandbox_number(ctx, input).await,
            "VerifySMSSandboxPhoneNumber" => self.verify_sandbox_number(ctx, input).await,
            "DeleteSMSSandboxPhoneNumber" => self.delete_sandbox_number(ctx, input).await,
            "ListSMSSandboxPhoneNumbers" => self.list_sandbox_numbers(ctx),
            // Sluice sends no real SMS, so the account is not limited to verified numbers.
            "GetSMSSandboxAccountStatus" => Ok(json!({"IsInSandbox": false})),
            // Sluice owns no origination numbers.
            "ListOriginationNumbers" => Ok(json!({"PhoneNumbers": []})),
            _ => return None,
        })
    }

    fn app(&self, arn: &Option<String>) -> Result<(String, Value), AwsError> {
        let arn = req(arn, "PlatformApplicationArn")?;
        let v =
            self.topic_store().get_resource(APP, arn).ok_or_else(|| not_found("PlatformApplication does not exist"))?;
        Ok((arn.to_owned(), v))
    }

    async fn create_app(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let r: AppRequest = parse(input)?;
        let name = req(&r.name, "Name")?;
        let platform = req(&r.platform, "Platform")?;
        if !PLATFORMS.contains(&platform) {
            return Err(invalid_parameter("Platform Reason: Platform is not supported"));
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) || name.len() > 256 {
            return Err(invalid_parameter("Name"));
        }
        let arn = format!("arn:aws:sns:{}:{}:app/{platform}/{name}", ctx.region(), ctx.account());
        let mut attributes = r.attributes.clone();
        attributes.entry("Enabled".into()).or_insert_with(|| "true".into());
        self.durable(self.topic_store().put_resource(APP, &arn, json!({"attributes": attributes}))).await?;
        Ok(json!({"PlatformApplicationArn": arn}))
    }

    fn get_app(&self, input: Value) -> Result<Value, AwsError> {
        let r: AppRequest = parse(input)?;
        let (_, v) = self.app(&r.platform_application_arn)?;
        let mut attrs = attrs_of(&v);
        attrs.retain(|k, _| !SECRET_ATTRIBUTES.contains(&k.as_str()));
        Ok(json!({"Attributes": attrs}))
    }

    async fn set_app(&self, input: Value) -> Result<Value, AwsError> {
        let r: AppRequest = parse(input)?;
        let (arn, v) = self.app(&r.platform_application_arn)?;
        let mut attrs = attrs_of(&v);
        for (k, val) in r.attributes {
            attrs.insert(k, Value::String(val));
        }
        self.durable(self.topic_store().put_resource(APP, &arn, json!({"attributes": attrs}))).await?;
        Ok(json!({}))
    }

    async fn delete_app(&self, input: Value) -> Result<Value, AwsError> {
        let r: AppRequest = parse(input)?;
        let arn = req(&r.platform_application_arn, "PlatformApplicationArn")?;
        let prefix = arn.replacen(":app/", ":endpoint/", 1) + "/";
        for (endpoint, _) in self.topic_store().list_resources(ENDPOINT, &prefix) {
            self.durable(self.topic_store().delete_resource(ENDPOINT, &endpoint)).await?;
        }
        self.durable(self.topic_store().delete_resource(APP, arn)).await?;
        Ok(json!({}))
    }

    fn list_apps(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let r: AppRequest = parse(input)?;
        let prefix = format!("arn:aws:sns:{}:{}:app/", ctx.region(), ctx.account());
        let all: Vec<Value> = self
            .topic_store()
            .list_resources(APP, &prefix)
            .into_iter()
            .map(|(arn, v)| {
                let mut attrs = attrs_of(&v);
                attrs.retain(|k, _| !SECRET_ATTRIBUTES.contains(&k.as_str()));
                json!({"PlatformApplicationArn": arn, "Attributes": attrs})
            })
            .collect();
        let (items, next) = super::page(&all, &r.next_token)?;
        let mut out = json!({"PlatformApplications": items});
        if let Some(n) = next {
            out["NextToken"] = n.into();
        }
        Ok(out)
    }

    async fn create_endpoint(&self, input: Value) -> Result<Value, AwsError> {
        let r: EndpointRequest = parse(input)?;
        let (app_arn, _) = self.app(&r.platform_application_arn)?;
        let token = req(&r.token, "Token")?;
        let prefix = app_arn.replacen(":app/", ":endpoint/", 1) + "/";
        // Creating an endpoint for a token that already has one returns it.
        for (arn, v) in self.topic_store().list_resources(ENDPOINT, &prefix) {
            if attrs_of(&v).get("Token").and_then(Value::as_str) == Some(token) {
                return Ok(json!({"EndpointArn": arn}));
            }
        }
        let arn = format!("{prefix}{}", uuid::Uuid::new_v4());
        let mut attrs: BTreeMap<String, String> = r.attributes.clone();
        attrs.insert("Token".into(), token.to_owned());
        attrs.entry("Enabled".into()).or_insert_with(|| "true".into());
        if let Some(data) = &r.custom_user_data {
            attrs.insert("CustomUserData".into(), data.clone());
        }
        self.durable(self.topic_store().put_resource(ENDPOINT, &arn, json!({"attributes": attrs}))).await?;
        Ok(json!({"EndpointArn": arn}))
    }

    pub(super) fn endpoint_resource(&self, arn: &str) -> Result<Value, AwsError> {
        self.topic_store().get_resource(ENDPOINT, arn).ok_or_else(|| not_found("Endpoint does not exist"))
    }

    fn get_endpoint(&self, input: Value) -> Result<Value, AwsError> {
        let r: EndpointRequest = parse(input)?;
        let v = self.endpoint_resource(req(&r.endpoint_arn, "EndpointArn")?)?;
        Ok(json!({"Attributes": attrs_of(&v)}))
    }

    async fn set_endpoint(&self, input: Value) -> Result<Value, AwsError> {
        let r: EndpointRequest = parse(input)?;
        let arn = req(&r.endpoint_arn, "EndpointArn")?;
        let mut attrs = attrs_of(&self.endpoint_resource(arn)?);
        for (k, val) in r.attributes {
            attrs.insert(k, Value::String(val));
        }
        self.durable(self.topic_store().put_resource(ENDPOINT, arn, json!({"attributes": attrs}))).await?;
        Ok(json!({}))
    }

    async fn delete_endpoint(&self, input: Value) -> Result<Value, AwsError> {
        let r: EndpointRequest = parse(input)?;
        self.durable(self.topic_store().delete_resource(ENDPOINT, req(&r.endpoint_arn, "EndpointArn")?)).await?;
        Ok(json!({}))
    }

    fn list_endpoints(&self, input: Value) -> Result<Value, AwsError> {
        let r: AppRequest = parse(input)?;
        let (app_arn, _) = self.app(&r.platform_application_arn)?;
        let prefix = app_arn.replacen(":app/", ":endpoint/", 1) + "/";
        let all: Vec<Value> = self
            .topic_store()
            .list_resources(ENDPOINT, &prefix)
            .into_iter()
            .map(|(arn, v)| json!({"EndpointArn": arn, "Attributes": attrs_of(&v)}))
            .collect();
        let (items, next) = super::page(&all, &r.next_token)?;
        let mut out = json!({"Endpoints": items});
        if let Some(n) = next {
            out["NextToken"] = n.into();
        }
        Ok(out)
    }

    fn account_key(ctx: &RequestContext) -> String {
        format!("{}:{}", ctx.account(), ctx.region())
    }

    fn get_sms_attributes(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let r: SmsRequest = parse(input)?;
        let stored = self.topic_store().get_resource(SMS, &Self::account_key(ctx)).unwrap_or_else(|| json!({}));
        let mut attrs = stored.as_object().cloned().unwrap_or_default();
        let wanted: Vec<String> = r
            .attributes
            .as_ref()
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        if !wanted.is_empty() {
            attrs.retain(|k, _| wanted.contains(k));
        }
        Ok(json!({"attributes": attrs}))
    }

    async fn set_sms_attributes(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let r: SmsRequest = parse(input)?;
        let given = r.attributes.as_ref().and_then(Value::as_object).cloned().unwrap_or_default();
        let key = Self::account_key(ctx);
        let mut attrs =
            self.topic_store().get_resource(SMS, &key).and_then(|v| v.as_object().cloned()).unwrap_or_default();
        for (k, v) in given {
            if !SMS_ATTRIBUTES.contains(&k.as_str()) {
                return Err(invalid_parameter(&k));
            }
            if k == "DefaultSMSType" && !matches!(v.as_str(), Some("Promotional" | "Transactional")) {
                return Err(invalid_parameter("DefaultSMSType"));
            }
            attrs.insert(k, v);
        }
        self.durable(self.topic_store().put_resource(SMS, &key, Value::Object(attrs))).await?;
        Ok(json!({}))
    }

    fn phone(r: &SmsRequest) -> Result<&str, AwsError> {
        let p = req(&r.phone_number, "phoneNumber")?;
        if !valid_phone(p) {
            return Err(invalid_parameter("PhoneNumber"));
        }
        Ok(p)
    }

    fn check_opted_out(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let r: SmsRequest = parse(input)?;
        let p = Self::phone(&r)?;
        let out = self.topic_store().get_resource(OPTED_OUT, &format!("{}:{p}", Self::account_key(ctx))).is_some();
        Ok(json!({"isOptedOut": out}))
    }

    fn list_opted_out(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let r: SmsRequest = parse(input)?;
        let prefix = format!("{}:", Self::account_key(ctx));
        let all: Vec<Value> = self
            .topic_store()
            .list_resources(OPTED_OUT, &prefix)
            .into_iter()
            .map(|(k, _)| Value::String(k[prefix.len()..].to_owned()))
            .collect();
        let (items, next) = super::page(&all, &r.next_token)?;
        let mut out = json!({"phoneNumbers": items});
        if let Some(n) = next {
            out["nextToken"] = n.into();
        }
        Ok(out)
    }

    async fn opt_in(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let r: SmsRequest = parse(input)?;
        let p = Self::phone(&r)?;
        self.durable(self.topic_store().delete_resource(OPTED_OUT, &format!("{}:{p}", Self::account_key(ctx)))).await?;
        Ok(json!({}))
    }

    fn sandbox_key(ctx: &RequestContext, phone: &str) -> String {
        format!("{}:{phone}", Self::account_key(ctx))
    }

    async fn create_sandbox_number(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let r: SandboxRequest = parse(input)?;
        let phone = req(&r.phone_number, "PhoneNumber")?;
        if !valid_phone(phone) {
            return Err(invalid_parameter("PhoneNumber"));
        }
        let otp = format!("{:06}", rand_core::RngCore::next_u32(&mut rand_core::OsRng) % 1_000_000);
        let key = Self::sandbox_key(ctx, phone);
        self.durable(self.topic_store().put_resource(SANDBOX, &key, json!({"status": "Pending", "otp": otp}))).await?;
        // The verification text AWS would send, for a test to read from the outbox.
        let now = self.clock().now_ms();
        let entry = OutboxEntry {
            id: 0,
            subscription_arn: String::new(),
            protocol: "sms".into(),
            endpoint: phone.to_owned(),
            body: format!("Your verification code is {otp}"),
            headers: vec![],
            created_ms: now,
            attempts: 0,
            next_attempt_ms: now,
        };
        self.topic_store().add_outbox(vec![entry]).map_err(from_store)?.wait().await.map_err(from_store)?;
        Ok(json!({}))
    }

    async fn verify_sandbox_number(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let r: SandboxRequest = parse(input)?;
        let phone = req(&r.phone_number, "PhoneNumber")?;
        let otp = req(&r.one_time_password, "OneTimePassword")?;
        let key = Self::sandbox_key(ctx, phone);
        let v = self.topic_store().get_resource(SANDBOX, &key).ok_or_else(resource_not_found)?;
        if v.get("otp").and_then(Value::as_str) != Some(otp) {
            return Err(AwsError::new(
                400,
                "VerificationException",
                "VerificationException",
                "Invalid one-time password",
            ));
        }
        self.durable(self.topic_store().put_resource(SANDBOX, &key, json!({"status": "Verified", "otp": otp}))).await?;
        Ok(json!({}))
    }

    async fn delete_sandbox_number(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let r: SandboxRequest = parse(input)?;
        let key = Self::sandbox_key(ctx, req(&r.phone_number, "PhoneNumber")?);
        if self.topic_store().get_resource(SANDBOX, &key).is_none() {
            return Err(resource_not_found());
        }
        self.durable(self.topic_store().delete_resource(SANDBOX, &key)).await?;
        Ok(json!({}))
    }

    fn list_sandbox_numbers(&self, ctx: &RequestContext) -> Result<Value, AwsError> {
        let prefix = format!("{}:", Self::account_key(ctx));
        let numbers: Vec<Value> = self
            .topic_store()
            .list_resources(SANDBOX, &prefix)
            .into_iter()
            .map(|(k, v)| json!({"PhoneNumber": &k[prefix.len()..], "Status": v.get("status").cloned().unwrap_or(Value::Null)}))
            .collect();
        Ok(json!({"PhoneNumbers": numbers}))
    }
}
