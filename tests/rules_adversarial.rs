//! Hostile rules while the daemon records: each ends with a recorded error for the bad rule,
//! the good rule beside it keeps firing, and no sample is missed.

mod support;

use std::time::Duration;

use support::recorder::Daemon;

/// Fires on every sample, and only while `string` works as it should for it.
const GOOD: &str = r#"
rule { name = "good", severity = "info", hold = "0s",
       when = function(s)
         return string.upper("x") == "X" and ("y"):upper() == "Y" and s.load1 >= 0
       end }
"#;

fn bad_rule(body: &str) -> String {
    format!(
        "rule {{ name = \"bad\", severity = \"info\",\n  when = function(s)\n{body}\n  end }}\n"
    )
}

fn run_adversary(body: &str) {
    let bad = bad_rule(body);
    let d = Daemon::start_with_rules(
        "[sampler]\ninterval = \"1s\"\n[rules]\nrule_wall_limit = \"300ms\"\n",
        &[("a_good.lua", GOOD), ("b_bad.lua", &bad)],
    );
    let t0 = jiff::Timestamp::now().as_millisecond();
    // The bad rule fails, is recorded with file and line, and is disabled after 3 failures.
    d.wait_for(
        "the bad rule to be disabled",
        Duration::from_secs(30),
        || {
            let v = d.try_sql_json("SELECT disabled FROM rule_state WHERE rule = 'bad'")?;
            (v.get(0)?["disabled"] == 1).then_some(())
        },
    );
    let errors = d.sql_json("SELECT file, line, message FROM rule_error WHERE rule = 'bad'");
    let errors = errors.as_array().unwrap();
    assert!(!errors.is_empty());
    assert!(
        errors[0]["file"].as_str().unwrap().ends_with("b_bad.lua"),
        "{errors:?}"
    );
    // A "rule is broken" incident was opened.
    let broken = d.scalar(
        "SELECT count(*) FROM incident WHERE rule = 'bad' AND title LIKE 'rule bad is broken%'",
    );
    assert_eq!(broken, 1);
    // The good rule keeps firing.
    let n = d.sample_count();
    d.wait_samples(n + 2, Duration::from_secs(10));
    assert_eq!(
        d.scalar("SELECT status FROM rule_state WHERE rule = 'good'"),
        "firing"
    );
    assert_eq!(
        d.scalar("SELECT count(*) FROM rule_error WHERE rule = 'good'"),
        0,
        "the good rule was hurt"
    );
    // No sample missed: spacing stays near the interval and no gap was recorded.
    let rows = d.sql_json(&format!(
        "SELECT ts_ms FROM sample WHERE ts_ms >= {t0} ORDER BY ts_ms"
    ));
    support::assert_no_hole(rows.as_array().unwrap(), 2000, "beside the hostile rule");
    assert_eq!(
        d.scalar("SELECT count(*) FROM recorder_event WHERE kind = 'gap'"),
        0
    );
}

macro_rules! adversary {
    ($name:ident, $body:expr) => {
        #[test]
        fn $name() {
            run_adversary($body);
        }
    };
}

adversary!(endless_loop, "while true do end");
adversary!(
    endless_loop_in_pcall,
    "pcall(function() while true do end end) return true"
);
adversary!(
    endless_loop_in_coroutine,
    "local co = coroutine.wrap(function() while true do end end) co() return true"
);
adversary!(
    endless_loop_in_pcall_in_coroutine,
    "local co = coroutine.create(function() while true do pcall(function() while true do end end) end end) coroutine.resume(co) return true"
);
adversary!(
    table_bomb,
    "local t = {} for i = 1, 1e9 do t[i] = { i, i, i } end return true"
);
adversary!(
    string_rep_bomb,
    "local s = string.rep('x', 1 << 20) while true do s = s .. s end"
);
adversary!(
    pathological_pattern,
    "return string.find(string.rep('a', 40000), '.-.-.-.-.-.-.-b') ~= nil"
);
adversary!(
    deep_recursion,
    "local function f(n) return 1 + f(n + 1) end return f(1) > 0"
);
adversary!(
    reach_os,
    "os.execute('touch /tmp/hogtrap-pwned') return true"
);
adversary!(reach_io, "local f = io.open('/etc/passwd') return f ~= nil");
adversary!(reach_require, "local os = require('os') return os ~= nil");
adversary!(
    load_bytecode,
    "local f = load('\\27Lua\\84\\0', 'x', 'b') return f() ~= nil"
);
adversary!(reach_dofile, "dofile('/etc/passwd') return true");
adversary!(reach_string_dump, "return #string.dump(function() end) > 0");
adversary!(reach_debug, "return debug.getinfo(1) ~= nil");
adversary!(
    change_string_for_others,
    "string.upper = function() return 'pwned' end getmetatable('').__index.upper = function() return 'pwned' end return true"
);
