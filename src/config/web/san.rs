//! The subject alternative names of a certificate, read from its DER, written the way Go
//! writes them (`client_allowed_sans` compares them as exporter-toolkit does: as strings).
//! Only the path to the extension is walked; rustls has already checked the certificate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `2.5.29.17`, subjectAltName.
const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
/// `[3] EXPLICIT Extensions` in TBSCertificate.
const EXTENSIONS: u8 = 0xa3;
/// GeneralName choices compared by Go: rfc822Name, dNSName, uniformResourceIdentifier,
/// iPAddress (all implicitly tagged primitives).
const EMAIL: u8 = 0x81;
const DNS: u8 = 0x82;
const URI: u8 = 0x86;
const IP: u8 = 0x87;

/// DNS names, e-mail addresses, IP addresses and URIs of the certificate's subjectAltName
/// extension; empty without one; None when the DER is malformed.
pub fn names(der: &[u8]) -> Option<Vec<String>> {
    let (cert, _) = expect(der, SEQUENCE)?;
    let (mut tbs, _) = expect(cert, SEQUENCE)?;
    while !tbs.is_empty() {
        let (tag, value, rest) = tlv(tbs)?;
        tbs = rest;
        if tag == EXTENSIONS {
            let (mut extensions, _) = expect(value, SEQUENCE)?;
            while !extensions.is_empty() {
                let (extension, rest) = expect(extensions, SEQUENCE)?;
                extensions = rest;
                let (oid, mut fields) = expect(extension, OID)?;
                if oid != SAN_OID {
                    continue;
                }
                if fields.first() == Some(&BOOLEAN) {
                    fields = expect(fields, BOOLEAN)?.1;
                }
                let (san, _) = expect(fields, OCTET_STRING)?;
                return general_names(san);
            }
        }
    }
    Some(Vec::new())
}

fn general_names(der: &[u8]) -> Option<Vec<String>> {
    let (mut names, _) = expect(der, SEQUENCE)?;
    let mut out = Vec::new();
    while !names.is_empty() {
        let (tag, value, rest) = tlv(names)?;
        names = rest;
        match tag {
            EMAIL | DNS | URI => out.push(std::str::from_utf8(value).ok()?.to_owned()),
            IP => out.push(ip(value)?),
            _ => {}
        }
    }
    Some(out)
}

/// As Go's `net.IP.String`: an IPv4-mapped IPv6 address is written as IPv4.
fn ip(octets: &[u8]) -> Option<String> {
    let ip = match octets.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(octets).ok()?)),
        16 => {
            let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(octets).ok()?);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(ip.to_string())
}

/// The value of the element at the start of `der` when it has `tag`, and what follows it.
fn expect(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, value, rest) = tlv(der)?;
    (t == tag).then_some((value, rest))
}

/// Tag, value and the rest, for single-byte tags and definite lengths (all DER has).
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, der) = der.split_first()?;
    let (&first, mut der) = der.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let bytes = usize::from(first & 0x7f);
        if bytes == 0 || bytes > 4 || der.len() < bytes {
            return None;
        }
        let (len, rest) = der.split_at(bytes);
        der = rest;
        len.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
    };
    (der.len() >= len).then(|| (tag, &der[..len], &der[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_or_foreign_der_is_none_not_a_panic() {
        assert_eq!(names(&[]), None);
        assert_eq!(names(&[0x30, 0x82, 0xff]), None);
        assert_eq!(names(&[0x30, 0x05, 0x30, 0x03, 0x02, 0x01]), None);
        // A certificate whose TBSCertificate has no extensions: no names.
        assert_eq!(
            names(&[0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x01]),
            Some(vec![])
        );
    }

    #[test]
    fn ip_addresses_are_written_as_go_writes_them() {
        assert_eq!(ip(&[127, 0, 0, 1]).unwrap(), "127.0.0.1");
        let mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1];
        assert_eq!(ip(&mapped).unwrap(), "10.0.0.1");
        let mut loopback = [0u8; 16];
        loopback[15] = 1;
        assert_eq!(ip(&loopback).unwrap(), "::1");
        assert_eq!(ip(&[1, 2, 3]), None);
    }
}
