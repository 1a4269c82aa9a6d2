//! Loopback addresses for Pods (pure).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// Hands out loopback addresses 127.0.x.y, one per Pod, from a first address on; addresses
/// given back are handed out again (lowest first).
#[derive(Clone, Debug)]
pub struct IpPool {
    first: u32,
    last: u32,
    in_use: BTreeSet<u32>,
}

impl IpPool {
    /// A pool from `first` to 127.255.255.254.
    pub fn new(first: Ipv4Addr) -> Self {
        Self {
            first: u32::from(first),
            last: u32::from(Ipv4Addr::new(127, 255, 255, 254)),
            in_use: BTreeSet::new(),
        }
    }

    /// The lowest free address, or `None` when all are taken.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let mut candidate = self.first;
        for used in self.in_use.range(self.first..) {
            if *used != candidate {
                break;
            }
            candidate += 1;
        }
        (candidate <= self.last).then(|| {
            self.in_use.insert(candidate);
            Ipv4Addr::from(candidate)
        })
    }

    /// Marks `ip` as taken (a Pod that already had it, found at start).
    pub fn claim(&mut self, ip: Ipv4Addr) -> bool {
        let n = u32::from(ip);
        (self.first..=self.last).contains(&n) && self.in_use.insert(n)
    }

    /// Gives `ip` back.
    pub fn release(&mut self, ip: Ipv4Addr) {
        self.in_use.remove(&u32::from(ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_handed_out_in_order_and_reused_lowest_first() {
        let mut pool = IpPool::new(Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 0, 0, 3)));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 0, 0, 4)));
        pool.release(Ipv4Addr::new(127, 0, 0, 3));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 0, 0, 3)));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 0, 0, 5)));
    }

    #[test]
    fn a_claimed_address_is_skipped() {
        let mut pool = IpPool::new(Ipv4Addr::new(127, 0, 0, 2));
        assert!(pool.claim(Ipv4Addr::new(127, 0, 0, 2)));
        assert!(!pool.claim(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 0, 0, 3)));
    }

    #[test]
    fn the_pool_ends_below_the_broadcast_address() {
        let mut pool = IpPool::new(Ipv4Addr::new(127, 255, 255, 254));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 255, 255, 254)));
        assert_eq!(pool.allocate(), None);
    }
}
