//! `provide` and `request` options (reference: options.go): names or
//! decimal codes, values from the config or from CNI_ARGS.

use super::config::{ProvideOption, RequestOption};

const ROUTERS: u8 = 3;
const SUBNET_MASK: u8 = 1;

fn code(name: &str) -> Result<u8, String> {
    Ok(match name {
        "subnet-mask" => 1,
        "routers" => 3,
        "host-name" => 12,
        "user-class" => 77,
        "vendor-class-identifier" => 60,
        "dhcp-client-identifier" => 61,
        n => n
            .parse::<u8>()
            .map_err(|e| format!("Can not parse option {n:?}: {e}"))?,
    })
}

/// CNI_ARGS read loosely as the reference does here: `;` then the first `=`.
fn arg<'a>(args: &'a str, key: &str) -> Option<&'a str> {
    args.split(';')
        .filter_map(|p| p.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .next_back()
}

/// Options to send: `(code, value)`.
pub type Provided = Vec<(u8, Vec<u8>)>;

/// The option 55 list and the options to send.
pub fn prepare(
    args: &str,
    provide: &[ProvideOption],
    request: &[RequestOption],
) -> Result<(Vec<u8>, Provided), String> {
    let mut req = Vec::new();
    let skip = request.iter().any(|r| r.skip_default);
    if !skip {
        req.extend([ROUTERS, SUBNET_MASK]);
    }
    for r in request {
        if r.option.is_empty() {
            continue;
        }
        let c = code(&r.option)?;
        if !req.contains(&c) {
            req.push(c);
        }
    }
    let mut give = Vec::new();
    for p in provide {
        let c = code(&p.option)?;
        if !p.value.is_empty() {
            if p.value.len() > 255 {
                return Err(format!(
                    "value too long for option {:?}: {:?}",
                    p.option, p.value
                ));
            }
            give.push((c, p.value.as_bytes().to_vec()));
        }
        if !p.from_arg.is_empty() {
            if let Some(v) = arg(args, &p.from_arg) {
                if v.len() > 255 {
                    return Err(format!("value too long for option {:?}: {v:?}", p.from_arg));
                }
                give.push((c, v.as_bytes().to_vec()));
            }
        }
    }
    Ok((req, give))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_names_codes_and_args() {
        let (r, g) = prepare("", &[], &[]).unwrap();
        assert_eq!(r, vec![3, 1]);
        assert!(g.is_empty());
        let provide = [ProvideOption {
            option: "host-name".into(),
            value: String::new(),
            from_arg: "K8S_POD_NAME".into(),
        }];
        let request = [RequestOption {
            skip_default: true,
            option: "121".into(),
        }];
        let (r, g) = prepare("A=b;K8S_POD_NAME=web=1", &provide, &request).unwrap();
        assert_eq!(r, vec![121]);
        assert_eq!(g, vec![(12, b"web=1".to_vec())]);
        let bad = [RequestOption {
            skip_default: false,
            option: "x".into(),
        }];
        assert!(prepare("", &[], &bad)
            .unwrap_err()
            .starts_with("Can not parse option \"x\""));
    }
}
