//! Admission: how many calls run at once, in all and per tenant. Beyond
//! either limit a call is refused at once (429 with `Retry-After`) rather
//! than queued, so a burst costs the host a refusal, not memory or time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The permits a running call holds; dropping it admits the next.
pub struct Admitted {
    _global: OwnedSemaphorePermit,
    _tenant: OwnedSemaphorePermit,
}

pub struct Admission {
    global: Arc<Semaphore>,
    per_tenant: u32,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Which limit refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Global(u32),
    Tenant(u32),
}

impl Admission {
    pub fn new(global: u32, per_tenant: u32) -> Self {
        Admission {
            global: Arc::new(Semaphore::new(global.max(1) as usize)),
            per_tenant: per_tenant.max(1),
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// Admits a call of `tenant` (a tenant the governance knows), or says
    /// which limit is full.
    pub fn admit(&self, tenant: &str, global_limit: u32) -> Result<Admitted, Refusal> {
        let semaphore = {
            let mut tenants = self.tenants.lock().map_err(|_| Refusal::Global(global_limit))?;
            tenants
                .entry(tenant.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant as usize)))
                .clone()
        };
        let tenant_permit = semaphore.try_acquire_owned().map_err(|_| Refusal::Tenant(self.per_tenant))?;
        let global = self.global.clone().try_acquire_owned().map_err(|_| Refusal::Global(global_limit))?;
        Ok(Admitted { _global: global, _tenant: tenant_permit })
    }

    /// Calls running now.
    pub fn in_flight(&self, global_limit: u32) -> usize {
        (global_limit as usize).saturating_sub(self.global.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_at_its_limit_does_not_take_the_others_share() {
        let admission = Admission::new(3, 2);
        let a1 = admission.admit("a", 3);
        let a2 = admission.admit("a", 3);
        assert!(a1.is_ok() && a2.is_ok());
        assert_eq!(admission.admit("a", 3).err(), Some(Refusal::Tenant(2)));
        let b1 = admission.admit("b", 3);
        assert!(b1.is_ok());
        assert_eq!(admission.admit("b", 3).err(), Some(Refusal::Global(3)));
        drop(a1);
        let b2 = admission.admit("b", 3);
        assert!(b2.is_ok());
        assert_eq!(admission.in_flight(3), 3);
    }
}
