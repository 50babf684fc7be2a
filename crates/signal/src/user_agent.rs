//! What kind of client joined, from its User-Agent: a coarse `browser/platform` label for
//! operators (e.g. `chrome/android`), never the raw header (it fingerprints a device).

/// `browser/platform`, or `native` without a User-Agent (SDKs and test clients send none).
pub(crate) fn client_kind(ua: Option<&str>) -> String {
    let Some(ua) = ua.filter(|u| !u.trim().is_empty()) else {
        return "native".into();
    };
    let browser = if ua.contains("Edg/") || ua.contains("EdgA/") || ua.contains("EdgiOS/") {
        "edge"
    } else if ua.contains("Firefox/") || ua.contains("FxiOS/") {
        "firefox"
    } else if ua.contains("Chrome/") || ua.contains("CriOS/") {
        "chrome"
    } else if ua.contains("Safari/") {
        "safari"
    } else {
        "other"
    };
    let platform = if ua.contains("Android") {
        "android"
    } else if ua.contains("iPhone") || ua.contains("iPad") {
        "ios"
    } else if ua.contains("Windows") {
        "windows"
    } else if ua.contains("CrOS") {
        "chromeos"
    } else if ua.contains("Macintosh") || ua.contains("Mac OS X") {
        "mac"
    } else if ua.contains("Linux") {
        "linux"
    } else {
        "other"
    };
    format!("{browser}/{platform}")
}

#[cfg(test)]
mod tests {
    use super::client_kind;

    #[test]
    fn classifies_common_agents() {
        let cases = [
            (
                "Mozilla/5.0 (Linux; Android 14; SM-A146P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/139.0.0.0 Mobile Safari/537.36",
                "chrome/android",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "safari/ios",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/139.0.0.0 Safari/537.36 Edg/139.0.0.0",
                "edge/windows",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                "firefox/linux",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/140.0.0.0 Safari/537.36",
                "chrome/linux",
            ),
            ("curl/8.5.0", "other/other"),
        ];
        for (ua, want) in cases {
            assert_eq!(client_kind(Some(ua)), want, "{ua}");
        }
        assert_eq!(client_kind(None), "native");
        assert_eq!(client_kind(Some("  ")), "native");
    }
}
