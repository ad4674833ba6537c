//! Label rules: which label (if any) a member file of a package gets, and the group it belongs
//! to for the train/valid/test split (the speaker or voice for speech, the kit for drum kits,
//! the source file for everything else).
//!
//! Member paths are package paths without the leading `./`, e.g.
//! `usr/share/games/fillets-ng/sound/hanoi/cs/v-budou.ogg`; a member of a zip archive inside a
//! package is `ARCHIVE!MEMBER`, e.g. `usr/share/games/ufoai/base/0music.pk3!music/a.ogg`.

/// The outcome for one member file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Keep it with this label; `group` keeps splits disjoint (speaker, voice, kit or file).
    Keep { label: &'static str, group: String },
    /// Drop it, for this reason (counted per package in the report).
    Drop(&'static str),
}

fn keep(label: &'static str, group: impl Into<String>) -> Decision {
    Decision::Keep {
        label,
        group: group.into(),
    }
}

/// Audio file extensions the builder decodes.
pub const AUDIO_EXTS: &[&str] = &["ogg", "wav", "flac"];
/// Archive extensions whose members are examined: zips (warzone2100's `.wz` is one) and
/// OpenTTD's sound catalogue `.cat` ([`crate::data::extract`]).
pub const ARCHIVE_EXTS: &[&str] = &["zip", "pk3", "wz", "cat"];

/// Lower-case extension of a path's last component.
pub fn ext(path: &str) -> String {
    let name = file_name(path);
    match name.rfind('.') {
        Some(i) => name[i + 1..].to_ascii_lowercase(),
        None => String::new(),
    }
}

fn file_name(path: &str) -> &str {
    let inner = path.rsplit('!').next().unwrap_or(path);
    inner.rsplit('/').next().unwrap_or(inner)
}

fn stem(path: &str) -> &str {
    let name = file_name(path);
    match name.rfind('.') {
        Some(i) => &name[..i],
        None => name,
    }
}

/// Whether an archive member of `package` at `archive` (package path) should be examined at
/// all: only the archives named in the README, only their audio parts.
pub fn wants_archive(package: &str, archive: &str) -> bool {
    match package {
        "0ad-data" => archive.ends_with("mods/public/public.zip"),
        "ufoai-music" => archive.ends_with("0music.pk3"),
        "warzone2100-data" => archive.ends_with("warzone2100/base.wz"),
        "openttd-opensfx" => archive.ends_with("opensfx/opensfx.cat"),
        _ => false,
    }
}

/// Whether a package member is worth extracting: audio files and the archives named above.
pub fn wants_member(package: &str, path: &str) -> bool {
    let e = ext(path);
    if ARCHIVE_EXTS.contains(&e.as_str()) {
        return wants_archive(package, path);
    }
    AUDIO_EXTS.contains(&e.as_str()) || e == "opus"
}

/// Files of a package played one after another as one recording, this many at a time:
/// gcin-voice's syllables are mostly under the 0.5 s speech minimum on their own, so runs of
/// 20 (in path order: the same initial, then the same final) make clips of a few seconds.
pub fn join_files(package: &str) -> Option<usize> {
    (package == "gcin-voice").then_some(20)
}

/// Version of a package's rules: a part built with another version is rebuilt (its clips
/// change). gcin-voice is 2 since its syllables are joined.
pub fn package_version(package: &str) -> u32 {
    match package {
        "gcin-voice" => 2,
        // kick04.ogg (a WAV in an unsupported format) became a drop instead of an error.
        "lmms-common" => 2,
        // Three renders per part, the MuseScore_General bank beside FluidR3_GM; MMA's random
        // timing/velocity/skips seeded per groove (render/mma.rs).
        "render-procedural" | "render-freedoom" | "render-mma" => 3,
        // Animal scenes (birds, insects, frogs, mammals) beside wind, water and engines.
        "render-ambience" => 2,
        _ => 1,
    }
}

/// The label and group of `path` in `package`, or why it is dropped.
pub fn classify(package: &str, path: &str) -> Decision {
    let e = ext(path);
    if e == "opus" {
        return Decision::Drop("opus (no decoder)");
    }
    if !AUDIO_EXTS.contains(&e.as_str()) {
        return Decision::Drop("not audio");
    }
    let lower = path.to_ascii_lowercase();
    let file = format!("{package}/{}", path.rsplit('/').next().unwrap_or(path));
    match package {
        "tuxpaint-stamps-default" => tuxpaint(path),
        p if p.starts_with("fillets-ng-data-") => fillets(p, path),
        p if p.starts_with("asterisk-") => asterisk(path),
        "ktuberling-data" => {
            // usr/share/ktuberling/sounds/LANG/word.ogg: one volunteer voice per language.
            let parts: Vec<&str> = path.split('/').collect();
            match parts.iter().position(|s| *s == "sounds") {
                Some(i) if parts.len() == i + 3 => keep("speech", format!("ktuberling/{}", parts[i + 1])),
                _ => Decision::Drop("not a word recording"),
            }
        }
        "gcin-voice" => keep("speech", "gcin-voice"),
        "wesnoth-1.16-music" | "ufoai-music" => keep("music", file),
        "hydrogen-drumkits" => {
            // usr/share/hydrogen/data/drumkits/KIT/sample.flac: the kit is the group.
            let parts: Vec<&str> = path.split('/').collect();
            match parts.iter().position(|s| *s == "drumkits") {
                Some(i) if parts.len() > i + 2 => keep("drums", format!("hydrogen/{}", parts[i + 1])),
                _ => Decision::Drop("outside a kit"),
            }
        }
        "sonic-pi-samples" => sonic_pi(stem(path), file),
        "lmms-common" => lmms(&lower, file),
        "megaglest-data" => megaglest(&lower, file),
        "supertuxkart-data" => supertuxkart(&lower, file),
        "0ad-data" => zero_ad(&lower, file),
        p if p.starts_with("fretsonfire-songs-") => {
            // .../songs/PACK/SONG/guitar.ogg: the recorded guitar stem of a real band
            // recording; song.ogg (the rest of the band, maybe with rhythm guitar) has no
            // single label.
            let parts: Vec<&str> = path.split('/').collect();
            match parts.iter().position(|s| *s == "songs") {
                Some(i) if parts.len() == i + 4 && lower.ends_with("/guitar.ogg") => {
                    keep("guitar", format!("fretsonfire/{}/{}", parts[i + 1], parts[i + 2]))
                }
                _ => Decision::Drop("band mix without a single label"),
            }
        }
        "npm-piano-velocity10" => {
            // package/audio/NOTEv10.ogg: one held note of the Salamander grand each.
            if lower.starts_with("package/audio/") {
                keep("piano", file)
            } else {
                Decision::Drop("not a note")
            }
        }
        "warzone2100-data" => warzone(&lower, file),
        "openttd-opensfx" => openttd(&lower, file),
        "widelands-data" => widelands(&lower, file),
        "widelands-music" => {
            // widelands-data's data/music/ (29 in-game tracks, intro, menu); groups named after
            // the .deb's files like widelands-data's own.
            if lower.contains("/data/music/") {
                keep("music", format!("widelands-data/{}", file_name(path)))
            } else {
                Decision::Drop("not music")
            }
        }
        "naev-data" => {
            // dat/snd/music/*.ogg: the soundtrack (six composers); the sound effects (lasers,
            // explosions, synthetic engines) have no label.
            if lower.contains("/dat/snd/music/") {
                keep("music", file)
            } else {
                Decision::Drop("sound effect")
            }
        }
        "minetest-data" => {
            if stem(&lower).starts_with("env_sounds_water") {
                keep("water", file)
            } else {
                Decision::Drop("sound effect")
            }
        }
        _ => Decision::Drop("package has no rules"),
    }
}

/// Language code from tuxpaint names: `frog-1_desc_pt_BR` -> `pt_BR`, `frog_desc` -> `en`,
/// `9_zh_tw` -> `zh_tw`, `b_filled_en_GB` -> `en_GB`.
fn tuxpaint_lang(stem: &str) -> String {
    if let Some(i) = stem.find("_desc") {
        let rest = stem[i + 5..].trim_start_matches('_');
        return if rest.is_empty() { "en".into() } else { rest.into() };
    }
    let toks: Vec<&str> = stem.split('_').collect();
    let is_lang = |t: &str| (2..=3).contains(&t.len()) && t.chars().all(|c| c.is_ascii_alphabetic());
    match toks.as_slice() {
        [.., a, b] if toks.len() >= 3 && is_lang(a) && is_lang(b) && a.chars().all(|c| c.is_ascii_lowercase()) => {
            format!("{a}_{b}")
        }
        [.., b] if toks.len() >= 2 && is_lang(b) => (*b).to_string(),
        _ => "en".into(),
    }
}

fn tuxpaint(path: &str) -> Decision {
    let s = stem(path);
    // Volunteer voices, one set per language: the language is the speaker group.
    if s.contains("_desc") || path.contains("/symbols/math/") || path.contains("/symbols/alphabets/") {
        return keep("speech", format!("tuxpaint/{}", tuxpaint_lang(s).to_ascii_lowercase()));
    }
    if path.contains("/stamps/animals/") {
        return keep("animal", format!("tuxpaint-stamps-default/{s}"));
    }
    Decision::Drop("stamp sound effect")
}

/// Fillets: `level-SPEAKER-line.ogg` and variants (`v-line`, `line-v`); `v` is the big fish,
/// `m` the small fish, both one actor per language; every other character goes to one
/// "minor" group per language (actors may voice several minor characters).
fn fillets(package: &str, path: &str) -> Decision {
    let lang = package.trim_start_matches("fillets-ng-data-");
    if !path.contains("/sound/") {
        return Decision::Drop("not dialogue");
    }
    let toks: Vec<&str> = stem(path).split('-').collect();
    let speaker = if toks.contains(&"v") {
        "v"
    } else if toks.contains(&"m") {
        "m"
    } else {
        "minor"
    };
    keep("speech", format!("fillets/{lang}/{speaker}"))
}

/// Asterisk: `usr/share/asterisk/sounds/LOCALE_SEX_NAME/...`; the voice NAME is the group
/// (Allison speaks both the en and the es prompts).
fn asterisk(path: &str) -> Decision {
    let parts: Vec<&str> = path.split('/').collect();
    let Some(i) = parts.iter().position(|s| *s == "sounds") else {
        return Decision::Drop("not a prompt");
    };
    if parts.get(i + 2) == Some(&"silence") {
        return Decision::Drop("silence prompt");
    }
    match parts.get(i + 1) {
        Some(voice) if parts.len() > i + 2 => {
            let name = voice.rsplit('_').next().unwrap_or(voice);
            keep("speech", format!("asterisk/{name}"))
        }
        _ => Decision::Drop("not a prompt"),
    }
}

fn sonic_pi(s: &str, file: String) -> Decision {
    const DRUMS: &[&str] = &[
        "bd_",
        "sn_",
        "drum_",
        "tabla_",
        "glitch_perc",
        "loop_amen",
        "loop_breakbeat",
        "loop_perc",
        "loop_tabla",
        "loop_compus",
        "loop_safari",
        "elec_snare",
        "elec_hi_snare",
        "elec_lo_snare",
        "elec_mid_snare",
        "elec_filt_snare",
        "elec_hollow_kick",
        "elec_soft_kick",
        "elec_cymbal",
        "elec_fuzz_tom",
    ];
    if DRUMS.iter().any(|p| s.starts_with(p)) {
        keep("drums", file)
    } else if s.starts_with("bass_") || s.starts_with("glitch_bass") {
        keep("bass", file)
    } else if s.starts_with("guit_") {
        keep("guitar", file)
    } else if s == "ambi_piano" {
        keep("piano", file)
    } else {
        Decision::Drop("no instrument label")
    }
}

fn lmms(p: &str, file: String) -> Decision {
    let dir = p.split('/').rev().nth(1).unwrap_or("");
    let s = stem(p);
    let has = |k: &str| s.contains(k);
    match dir {
        "drums" | "beats" => keep("drums", file),
        "basses" => keep("bass", file),
        "bassloops" if !has("synth") => keep("bass", file),
        "latin" if has("guitar") => keep("guitar", file),
        "latin" if has("brass") => keep("winds", file),
        "instruments" | "stringsnpads" => {
            if has("bassslap") {
                keep("bass", file)
            } else if has("cello") || has("violin") || has("string") {
                keep("strings", file)
            } else if has("piano") {
                keep("piano", file)
            } else if has("guitar") {
                keep("guitar", file)
            } else if has("flute") || has("trumpet") {
                keep("winds", file)
            } else {
                Decision::Drop("no instrument label")
            }
        }
        _ => Decision::Drop("no instrument label"),
    }
}

const ANIMALS: &[&str] = &[
    "bird", "cow", "sheep", "wolf", "chicken", "dog", "owl", "rooster", "hawk", "pig", "bull", "eagle", "goat",
    "horse", "cattle", "camel", "elephant", "lion", "flamingo", "peacock", "animal",
];

fn first_token(s: &str) -> &str {
    s.split(['_', '-']).next().unwrap_or(s)
}

fn megaglest(p: &str, file: String) -> Decision {
    let s = stem(p);
    if p.contains("/water_sounds/") {
        return keep("water", file);
    }
    if p.contains("/menu/music/") {
        return keep("music", file);
    }
    if p.contains("/tilesets/") {
        return weather_or_animal(s, file).unwrap_or(Decision::Drop("mixed ambience"));
    }
    // Unit sounds: animal units are named after the animal (`cow_ack1`, `sheep_die2`); the
    // human units' lines are unlabelled voices and are dropped.
    let t = first_token(s).trim_end_matches(|c: char| c.is_ascii_digit());
    if ["pig", "sheep", "chicken", "cow", "bull", "eagle", "bee"].contains(&t) {
        keep("animal", file)
    } else {
        Decision::Drop("unit sound")
    }
}

fn supertuxkart(p: &str, file: String) -> Decision {
    let s = stem(p);
    if p.contains("/music/") {
        return Decision::Drop("music (not a listed source)");
    }
    if s.contains("engine") || s.starts_with("car_") || s.contains("locomotive") || s == "machine_sound" {
        keep("engine", file)
    } else if s.contains("river") || s.contains("waterfall") || s == "splash" {
        keep("water", file)
    } else {
        weather_or_animal(s, file).unwrap_or(Decision::Drop("sound effect"))
    }
}

/// Ambience named by its content, checked in this order: rain (water), wind, an animal.
fn weather_or_animal(stem: &str, file: String) -> Option<Decision> {
    if stem.contains("rain") {
        Some(keep("water", file))
    } else if stem.contains("wind") {
        Some(keep("wind", file))
    } else if ANIMALS.iter().any(|a| stem.contains(a)) {
        Some(keep("animal", file))
    } else {
        None
    }
}

/// warzone2100-data (`base.wz!audio/...`, 11-22 kHz): vehicle engines (transporter and VTOL
/// jets, treads, hover, construction vehicles) and the oil pump; the announcer (one voice:
/// research, tutorial, countdown and extra lines; two later additions of unknown origin left
/// out). The NEXUS voice (processed), taunts, radio chatter, weapons and the rest are dropped.
fn warzone(p: &str, file: String) -> Decision {
    const VEHICLES: &[&str] = &[
        "tstart",
        "tland",
        "tflight",
        "thover",
        "tread",
        "con-move",
        "con-move-off",
        "con-shut-down",
        "vtol-move",
        "vtolland",
        "vtoloff",
        "hovmove",
        "hovstart",
        "hovstop",
    ];
    let inner = p.rsplit('!').next().unwrap_or(p);
    let s = stem(inner);
    if (inner.starts_with("audio/sfx/vehicle/") && VEHICLES.contains(&s)) || inner == "audio/sfx/building/oilpump.ogg" {
        return keep("engine", file);
    }
    let voice = ["audio/memressp/", "audio/tutorial/", "audio/countdown/", "audio/extra/"];
    if voice.iter().any(|d| inner.starts_with(d)) && s != "power-transferred" && s != "lz-clear" {
        return keep("speech", "warzone2100/announcer");
    }
    Decision::Drop("sound effect")
}

/// openttd-opensfx: members `opensfx.cat!NN.wav` by catalogue index (each entry names its
/// recording and licence): vehicles and machines (propeller plane, jets, helicopter, bus and
/// truck starts, mining machinery, jackhammer, saws, monorail), animals (sheep, cow, horse,
/// tropical birds, monkeys), wind (52; 57 is the same bytes). Horn-dominated trains, horns,
/// Toyland comedy vehicles, crowds and effects are dropped.
fn openttd(p: &str, file: String) -> Decision {
    let inner = p.rsplit('!').next().unwrap_or(p);
    match stem(inner).parse::<u32>() {
        Ok(8 | 9 | 11 | 24 | 25 | 27 | 28 | 33 | 40 | 56 | 59 | 61 | 71) => keep("engine", file),
        Ok(36 | 37 | 38 | 66 | 68 | 72) => keep("animal", file),
        Ok(52) => keep("wind", file),
        _ => Decision::Drop("sound effect"),
    }
}

/// widelands-data: `data/sound/animals/` (birds, boar, coyote, crickets, frog, moose, stag,
/// wolf), farm animals (ox, sheep, horse, donkey) and the ducks of `data/world/critters/`;
/// crafts, industry, military, jingles and the soundtrack are dropped (the soundtrack is the
/// opt-in package `widelands-music`).
fn widelands(p: &str, file: String) -> Decision {
    let s = stem(p);
    let farm = ["ox_", "sheep_", "horse_", "donkey", "farm_animal_"];
    if p.contains("/data/sound/animals/")
        || (p.contains("/data/sound/farm/") && farm.iter().any(|f| s.starts_with(f)))
        || p.contains("/data/world/critters/duck/")
    {
        keep("animal", file)
    } else {
        Decision::Drop("sound effect")
    }
}

fn zero_ad(p: &str, file: String) -> Decision {
    let inner = p.rsplit('!').next().unwrap_or(p);
    let s = stem(inner);
    if inner.starts_with("audio/ambient/water/") {
        keep("water", file)
    } else if inner.starts_with("audio/ambient/weather/") {
        if s.contains("rain") {
            keep("water", file)
        } else if s.contains("wind") || s.contains("snowstorm") {
            keep("wind", file)
        } else {
            Decision::Drop("thunder")
        }
    } else if inner.starts_with("audio/actor/fauna/") && !inner.contains("/movement/") {
        keep("animal", file)
    } else {
        Decision::Drop("not ambient or fauna")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(pkg: &str, path: &str) -> Option<(&'static str, String)> {
        match classify(pkg, path) {
            Decision::Keep { label, group } => Some((label, group)),
            Decision::Drop(_) => None,
        }
    }

    #[test]
    fn speech_groups() {
        let t = "tuxpaint-stamps-default";
        assert_eq!(
            label(t, "usr/share/tuxpaint/stamps/animals/amphibians/frog-1_desc_pt_BR.ogg"),
            Some(("speech", "tuxpaint/pt_br".into()))
        );
        assert_eq!(
            label(t, "usr/share/tuxpaint/stamps/a/frog_desc.ogg").unwrap().1,
            "tuxpaint/en"
        );
        assert_eq!(
            label(t, "usr/share/tuxpaint/stamps/symbols/math/9_zh_tw.ogg")
                .unwrap()
                .1,
            "tuxpaint/zh_tw"
        );
        assert_eq!(
            label(
                t,
                "usr/share/tuxpaint/stamps/symbols/alphabets/english/filled/lowercase/b_filled_en_GB.ogg"
            )
            .unwrap()
            .1,
            "tuxpaint/en_gb"
        );
        assert_eq!(
            label(t, "usr/share/tuxpaint/stamps/animals/birds/crow.ogg").unwrap().0,
            "animal"
        );
        assert_eq!(label(t, "usr/share/tuxpaint/stamps/household/toilet.ogg"), None);
        let f = "fillets-ng-data-cs";
        assert_eq!(
            label(f, "usr/share/games/fillets-ng/sound/chest/cs/tru-v-truhla0.ogg")
                .unwrap()
                .1,
            "fillets/cs/v"
        );
        assert_eq!(
            label(f, "usr/share/games/fillets-ng/sound/gods/cs/b2-zasah2.ogg")
                .unwrap()
                .1,
            "fillets/cs/minor"
        );
        assert_eq!(
            label(
                "asterisk-core-sounds-es-wav",
                "usr/share/asterisk/sounds/es_MX_f_Allison/digits/1.wav"
            )
            .unwrap()
            .1,
            "asterisk/Allison"
        );
        assert_eq!(
            label(
                "asterisk-core-sounds-es-wav",
                "usr/share/asterisk/sounds/es_MX_f_Allison/silence/1.wav"
            ),
            None
        );
        assert_eq!(
            label("ktuberling-data", "usr/share/ktuberling/sounds/nn/eye.opus"),
            None
        );
        assert_eq!(
            label("ktuberling-data", "usr/share/ktuberling/sounds/de/eye.ogg")
                .unwrap()
                .1,
            "ktuberling/de"
        );
    }

    #[test]
    fn environment_and_instruments() {
        let fof = "usr/share/games/fretsonfire/data/songs/sectoid/Metal madness/";
        assert_eq!(
            label("fretsonfire-songs-sectoid", &format!("{fof}guitar.ogg")).unwrap(),
            ("guitar", "fretsonfire/sectoid/Metal madness".into())
        );
        assert_eq!(label("fretsonfire-songs-sectoid", &format!("{fof}song.ogg")), None);
        assert_eq!(
            label("npm-piano-velocity10", "package/audio/F#3v10.ogg").unwrap(),
            ("piano", "npm-piano-velocity10/F#3v10.ogg".into())
        );
        let wz = "usr/share/games/warzone2100/base.wz!audio/";
        assert_eq!(
            label("warzone2100-data", &format!("{wz}sfx/vehicle/tread.ogg"))
                .unwrap()
                .0,
            "engine"
        );
        assert_eq!(
            label("warzone2100-data", &format!("{wz}sfx/vehicle/cyber-move.ogg")),
            None
        );
        assert_eq!(
            label("warzone2100-data", &format!("{wz}memressp/research/rescomp.ogg")).unwrap(),
            ("speech", "warzone2100/announcer".into())
        );
        assert_eq!(label("warzone2100-data", &format!("{wz}nexus/synthvoice.ogg")), None);
        assert_eq!(
            label("warzone2100-data", &format!("{wz}memressp/trnsport/lz-clear.ogg")),
            None
        );
        let cat = "usr/share/games/openttd/baseset/opensfx/opensfx.cat!";
        assert_eq!(label("openttd-opensfx", &format!("{cat}08.wav")).unwrap().0, "engine");
        assert_eq!(label("openttd-opensfx", &format!("{cat}37.wav")).unwrap().0, "animal");
        assert_eq!(label("openttd-opensfx", &format!("{cat}52.wav")).unwrap().0, "wind");
        assert_eq!(label("openttd-opensfx", &format!("{cat}57.wav")), None);
        assert_eq!(label("openttd-opensfx", &format!("{cat}04.wav")), None);
        let wl = "usr/share/games/widelands/data/";
        assert_eq!(
            label("widelands-data", &format!("{wl}sound/animals/wolf_00.ogg"))
                .unwrap()
                .0,
            "animal"
        );
        assert_eq!(
            label("widelands-data", &format!("{wl}sound/farm/sheep_01.ogg"))
                .unwrap()
                .0,
            "animal"
        );
        assert_eq!(label("widelands-data", &format!("{wl}sound/farm/scythe_00.ogg")), None);
        assert_eq!(label("widelands-data", &format!("{wl}music/ingame_00.ogg")), None);
        assert_eq!(
            label("widelands-music", &format!("{wl}music/ingame_00.ogg")),
            Some(("music", "widelands-data/ingame_00.ogg".into()))
        );
        assert_eq!(
            label("widelands-music", &format!("{wl}sound/animals/wolf_00.ogg")),
            None
        );
        let nv = "usr/share/naev/dat/snd/";
        assert_eq!(
            label("naev-data", &format!("{nv}music/zalek1.ogg")),
            Some(("music", "naev-data/zalek1.ogg".into()))
        );
        assert_eq!(label("naev-data", &format!("{nv}sounds/laser.wav")), None);
        let mt = "usr/share/games/minetest/games/minetest_game/mods/env_sounds/sounds/";
        assert_eq!(
            label("minetest-data", &format!("{mt}env_sounds_water.1.ogg"))
                .unwrap()
                .0,
            "water"
        );
        assert_eq!(label("minetest-data", &format!("{mt}env_sounds_lava.1.ogg")), None);
        let z = "usr/share/games/0ad/mods/public/public.zip!audio/ambient/weather/";
        assert_eq!(label("0ad-data", &format!("{z}rain_01.ogg")).unwrap().0, "water");
        assert_eq!(label("0ad-data", &format!("{z}windgust.ogg")).unwrap().0, "wind");
        assert_eq!(label("0ad-data", &format!("{z}thunder_01.ogg")), None);
        let s = "usr/share/games/supertuxkart/data/sfx/";
        assert_eq!(
            label("supertuxkart-data", &format!("{s}engine_small.ogg")).unwrap().0,
            "engine"
        );
        assert_eq!(label("supertuxkart-data", &format!("{s}horn.ogg")), None);
        assert_eq!(
            label("supertuxkart-data", &format!("{s}exotic-birds.ogg")).unwrap().0,
            "animal"
        );
        let m = "usr/share/games/megaglest/techs/megapack/commondata/sounds/";
        assert_eq!(
            label("megaglest-data", &format!("{m}cow_ack1.wav")).unwrap().0,
            "animal"
        );
        assert_eq!(label("megaglest-data", &format!("{m}horseman_ack1.wav")), None);
        assert_eq!(
            label("hydrogen-drumkits", "usr/share/hydrogen/data/drumkits/Audiophob/x.wav").unwrap(),
            ("drums", "hydrogen/Audiophob".into())
        );
        assert_eq!(
            label(
                "lmms-common",
                "usr/share/lmms/samples/instruments/violin_pizzicato01.ogg"
            )
            .unwrap()
            .0,
            "strings"
        );
        assert_eq!(
            label("lmms-common", "usr/share/lmms/samples/instruments/church_organ01.ogg"),
            None
        );
        assert_eq!(
            label("sonic-pi-samples", "usr/share/sonic-pi/samples/bd_808.flac")
                .unwrap()
                .0,
            "drums"
        );
    }
}
