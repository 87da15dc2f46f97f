//! The demo credentials the sandbox accepts. They are public and worthless outside the sandbox.

/// OFD.ru: login for `POST /api/Authorization/CreateAuthToken`.
pub const OFD_LOGIN: &str = "demo";
/// OFD.ru: password for `POST /api/Authorization/CreateAuthToken`.
pub const OFD_PASSWORD: &str = "demo-password";
/// OFD.ru: the INN of the one legal entity linked to the demo account.
pub const OFD_INN: &str = "7841465198";
/// OFD.ru: the KPP of the one legal entity linked to the demo account.
pub const OFD_KPP: &str = "772501001";

/// DocSpace: the API key (`Authorization: Bearer …`) of the demo portal user.
pub const DOCSPACE_API_KEY: &str = "sk-sandbox-docspace";
/// DocSpace: the API key of a second portal user (who has a task of their own).
pub const DOCSPACE_API_KEY_2: &str = "sk-sandbox-docspace-2";

/// EvoVoice: user name for Basic auth or `POST /auth/credentials`.
pub const EVOVOICE_USERNAME: &str = "demo@evovoice.invalid";
/// EvoVoice: password for Basic auth or `POST /auth/credentials`.
pub const EVOVOICE_PASSWORD: &str = "demo-password";
/// EvoVoice: an account id to run reports for (any non-empty id is accepted).
pub const EVOVOICE_ACCOUNT_ID: &str = "acct-sandbox-1";

/// CloudBlue: user name for the token request (Basic auth).
pub const CLOUDBLUE_USERNAME: &str = "demo-reseller";
/// CloudBlue: password for the token request (Basic auth).
pub const CLOUDBLUE_PASSWORD: &str = "demo-password";
/// CloudBlue: the `X-Subscription-Key` every request needs.
pub const CLOUDBLUE_SUBSCRIPTION_KEY: &str = "sandbox-subscription-key";
/// CloudBlue: the marketplace (region) of the base URL and of the token request body.
pub const CLOUDBLUE_MARKETPLACE: &str = "eu";

/// MetaKocka: `secret_key`.
pub const METAKOCKA_SECRET_KEY: &str = "sandbox-secret-8899";
/// MetaKocka: `company_id`.
pub const METAKOCKA_COMPANY_ID: &str = "16";
