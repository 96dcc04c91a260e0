//! The address of a run's page: the one format the API's answers and the notices' links share,
//! so a link stored in a notice and a `view_url` in an answer never disagree.

use crate::ids::{RunId, TenantId};

/// The page of `run` of `tenant` under `base` (e.g. `https://runs.example.com/ui`; a trailing
/// slash is ignored): `{base}/tenants/{tenant}/runs/{run}`.
pub fn view_url(base: &str, tenant: TenantId, run: RunId) -> String {
    format!("{}/tenants/{tenant}/runs/{run}", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn names_the_tenant_and_the_run_under_the_base() {
        let run = RunId::from_uuid(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001));
        let tenant = TenantId::new(7).unwrap();
        let expected =
            "https://runs.example.com/ui/tenants/7/runs/01900000-0000-7000-8000-000000000001";
        assert_eq!(
            view_url("https://runs.example.com/ui", tenant, run),
            expected
        );
        assert_eq!(
            view_url("https://runs.example.com/ui/", tenant, run),
            expected
        );
    }
}
