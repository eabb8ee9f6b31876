//! Keeps a delivery's lease alive while its handler runs.

use std::time::Duration;

use crate::{Delivery, ErrorKind, Redelivery};

/// How a running job renews its lease: every third of the lease, to the full lease.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeaseRenewal {
    lease: Duration,
}

impl LeaseRenewal {
    /// Renewal for a backend whose leases can be extended, to its default lease (or its
    /// longest extension, when that is shorter); `None` otherwise (nothing to do: either no
    /// lease, or one that cannot be helped).
    pub(crate) fn for_backend(caps: &crate::Capabilities) -> Option<Self> {
        match (caps.redelivery, caps.max_lease()) {
            (Redelivery::Lease { default_lease, .. }, Some(max)) => Some(Self {
                lease: default_lease.min(max),
            }),
            _ => None,
        }
    }

    /// Renews `delivery`'s lease until the returned future is dropped. Finishes early only if
    /// the lease was lost (another consumer may then run the task too).
    pub(crate) async fn keep_alive(self, delivery: &Delivery) {
        let period = self.lease / 3;
        loop {
            tokio::time::sleep(period).await;
            match delivery.extend_lease(self.lease).await {
                Ok(()) => {}
                Err(err) if err.kind() == ErrorKind::LeaseLost => {
                    tracing::warn!(id = delivery.id(), "lease lost while the task ran");
                    return;
                }
                Err(err) => {
                    tracing::warn!(id = delivery.id(), error = %err, "lease renewal failed");
                }
            }
        }
    }
}
