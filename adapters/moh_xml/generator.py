"""Realistic MoH XML (GIAMDINHHS) test files, deterministic for a seed.

Why a generator rather than fixtures: real exports carry personal data and cannot be committed, and the
adapter's edge cases (legacy 4210 names, several cards, partial birth dates, broken HOSOs) need many
variants. The pools (names with diacritics, ICD-10 codes, drugs, services, lab indexes) are data in
``tables/synthetic.json``; identifiers follow the rules of the shared doc (CCCD consistent with birth year
and gender, HCMC province 079; BHYT cards as 2 letters + benefit digit + 79 + 10 digits).

``GeneratedFile.episodes`` keeps the rows written for each good HOSO and ``broken`` says where each
injected broken HOSO is and how the adapter must name it, so that tests can check the mapping against what
was generated. CLI: ``python -m adapters.moh_xml.generator --help``.
"""

from __future__ import annotations

import argparse
import base64
import random
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from adapters.moh_xml.codes import Row, layout, legacy_names, table

BROKEN_KINDS = ("bad-base64", "malformed-xml", "missing-ma-lk", "impossible-date")
_STAMP = "%Y%m%d%H%M"


@dataclass
class GeneratedEpisode:
    ma_lk: str
    tables: dict[str, list[Row]]  # LOAIHOSO -> rows, with their current (QĐ 130) names


@dataclass(frozen=True)
class BrokenHoso:
    kind: str
    index: int  # 1-based position of the HOSO in the file
    key: str  # the record key the adapter must report
    field: str  # the field it must name


@dataclass
class GeneratedFile:
    name: str
    facility: str
    payload: bytes
    episodes: list[GeneratedEpisode] = field(default_factory=list)
    broken: list[BrokenHoso] = field(default_factory=list)


def synthetic_ward_code(ward: str) -> str:
    """A 5-digit commune code for a ward of the synthetic pool (its place in the pool): made up, like the
    rest of the generated data, in the shape of the real codes (HCMC's start at 26734)."""
    return str(26734 + 3 * table("synthetic")["wards"].index(ward))


class _Maker:
    """Draws one episode after another from one random stream, so a seed fixes the whole file."""

    def __init__(self, rng: random.Random, facility: str) -> None:
        self.rng, self.facility = rng, facility
        self.pools: dict[str, Any] = table("synthetic")
        self.used: set[str] = set()

    def digits(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789") for _ in range(n))

    def doctor(self) -> str:
        return f"{self.digits(6)}/HCM-CCHN"

    def episode(self) -> GeneratedEpisode:
        rng = self.rng
        start = datetime(2024, 1, 1, 7) + timedelta(days=rng.randrange(540), minutes=rng.randrange(600))
        loai = rng.choices(["01", "02", "03", "04", "05", "09"], weights=[55, 8, 25, 5, 5, 2])[0]
        inpatient = loai in ("03", "04", "09")
        end = start + (timedelta(days=rng.randint(1, 9), hours=rng.randint(0, 8)) if inpatient
                       else timedelta(minutes=rng.randint(30, 240)))
        finished = rng.random() > 0.05
        ma_lk = self._ma_lk(start)
        summary = self._summary(ma_lk, start, end if finished else None, loai)
        tables: dict[str, list[Row]] = {"XML1": [summary]}
        tables["XML2"] = self._drugs(ma_lk, start, inpatient)
        tables["XML3"] = self._services(ma_lk, start)
        tables["XML4"] = self._results(ma_lk, start)
        notes = self._notes(ma_lk, start, rng.randint(1, 4) if inpatient else rng.randint(0, 1))
        if notes:
            tables["XML5"] = notes
        if inpatient and finished:
            tables["XML7"] = [{"MA_LK": ma_lk, "SO_LUU_TRU": self.digits(6), "PP_DIEUTRI": "Điều trị nội khoa"}]
        if summary.get("MA_LOAI_RV") == "2":
            tables["XML13"] = [self._referral(ma_lk, summary)]
        if finished and not inpatient and rng.random() < 0.35:
            tables["XML14"] = [self._appointment(ma_lk, end, summary)]
        return GeneratedEpisode(ma_lk, {k: v for k, v in tables.items() if v})

    def _ma_lk(self, start: datetime) -> str:
        while (candidate := f"{self.facility}{start:%y%m%d}{self.digits(5)}") in self.used:
            pass
        self.used.add(candidate)
        return candidate

    def _person(self) -> dict[str, str]:
        rng, pools = self.rng, self.pools
        sex = rng.choices(["male", "female", "other"], weights=[49, 50, 1])[0]
        names = "female" if sex == "female" else "male"
        family = rng.choices([f for f, _ in pools["family"]], weights=[w for _, w in pools["family"]])[0]
        full = f"{family} {rng.choice(pools['middle'][names])} {rng.choice(pools['given'][names])}"
        born = datetime(1935, 1, 1) + timedelta(days=rng.randrange(88 * 365))
        birth = f"{born:%Y%m%d}0000" if rng.random() > 0.05 else f"{born:%Y}00000000"
        century = (born.year // 100 - 19) * 2 + (1 if sex == "female" else 0)
        cccd = f"079{century}{born:%y}{self.digits(6)}" if rng.random() > 0.1 else ""
        return {"HO_TEN": full, "SO_CCCD": cccd, "NGAY_SINH": birth,
                "GIOI_TINH": {"male": "1", "female": "2", "other": "3"}[sex], "AGE": str(2024 - born.year)}

    def _cards(self, age: int, year: int) -> dict[str, str]:
        rng = self.rng
        count = rng.choices([0, 1, 2], weights=[10, 85, 5])[0]
        cards = []
        for _ in range(count):
            category = "TE" if age < 6 else ("HT" if age >= 60 and rng.random() < 0.5
                                            else rng.choice(self.pools["card_categories"]))
            cards.append(f"{category}{rng.randint(1, 5)}79{'79' + self.digits(8)}")
        return {"MA_THE_BHYT": ";".join(cards), "MA_DKBD": rng.choice(self.pools["facilities"]) if cards else "",
                "GT_THE_TU": ";".join(f"{year}0101" for _ in cards),
                "GT_THE_DEN": ";".join(f"{year}1231" for _ in cards)}

    def _summary(self, ma_lk: str, start: datetime, end: datetime | None, loai: str) -> Row:
        rng, pools = self.rng, self.pools
        person = self._person()
        age = int(person.pop("AGE"))
        diagnoses = rng.sample(pools["icd10"], rng.randint(1, 5))
        discharge = rng.choices(["1", "2", "4", "5"], weights=[85, 7, 5, 3])[0] if end else ""
        phone = rng.choice(["09", "03", "07", "08"]) + self.digits(8) if rng.random() < 0.8 else ""
        number, street, ward = rng.randint(1, 450), rng.choice(pools["streets"]), rng.choice(pools["wards"])
        address = f"{number} {street}, {ward}, Thành phố Hồ Chí Minh"
        return {
            "MA_LK": ma_lk, "STT": "1", "MA_BN": f"BN{self.digits(8)}", **person, "DIA_CHI": address,
            "MATINH_CU_TRU": "79", "MAXA_CU_TRU": synthetic_ward_code(ward), "DIEN_THOAI": phone,
            **self._cards(age, start.year),
            "LY_DO_VV": rng.choice(pools["reasons"]), "CHAN_DOAN_VAO": diagnoses[0][1],
            "CHAN_DOAN_RV": "; ".join(name for _, name in diagnoses),
            "MA_BENH_CHINH": diagnoses[0][0], "MA_BENH_KT": ";".join(code for code, _ in diagnoses[1:]),
            "MA_DOITUONG_KCB": "1", "MA_NOI_DEN": rng.choice(pools["referral_targets"]) if discharge == "4" else "",
            "NGAY_VAO": f"{start:{_STAMP}}", "NGAY_RA": f"{end:{_STAMP}}" if end else "",
            "SO_NGAY_DTRI": str((end - start).days + 1) if end else "",
            "KET_QUA_DTRI": {"1": "1", "2": "2", "4": "2", "5": "5"}.get(discharge, ""),
            "MA_LOAI_RV": {"4": "2", "5": "1"}.get(discharge, "1" if end else ""),
            "MA_LOAI_KCB": loai, "MA_KHOA": "K01", "MA_CSKCB": self.facility,
            "CAN_NANG": f"{rng.randint(35, 85)}", "T_TONGCHI_BV": f"{rng.randint(50, 9000) * 1000}",
            "T_BHTT": "0", "T_BNTT": "0",
        }

    def _drugs(self, ma_lk: str, start: datetime, inpatient: bool) -> list[Row]:
        rows = []
        for stt, drug in enumerate(self.rng.sample(self.pools["drugs"], self.rng.randint(1, 4)), start=1):
            code, name, strength, unit, route, dose, how = drug
            ordered = start + timedelta(minutes=20 + 5 * stt)
            given = ordered + timedelta(minutes=30) if inpatient else None
            rows.append({"MA_LK": ma_lk, "STT": str(stt), "MA_THUOC": code, "TEN_THUOC": name, "DON_VI_TINH": unit,
                         "HAM_LUONG": strength, "DUONG_DUNG": route, "LIEU_DUNG": dose, "CACH_DUNG": how,
                         "SO_LUONG": str(self.rng.randint(1, 60)), "MA_BAC_SI": self.doctor(),
                         "NGAY_YL": f"{ordered:{_STAMP}}", "NGAY_TH_YL": f"{given:{_STAMP}}" if given else ""})
        return rows

    def _services(self, ma_lk: str, start: datetime) -> list[Row]:
        rng, rows = self.rng, []
        chosen = rng.sample(self.pools["services"], rng.randint(1, 4))
        items = [(code, name, "") for code, name, _ in chosen]
        if rng.random() < 0.3:
            items.append(("", "", rng.choice(self.pools["supplies"])[0]))
        for stt, (code, name, supply) in enumerate(items, start=1):
            ordered = start + timedelta(minutes=10 * stt)
            done = rng.random() < 0.8 and not supply
            rows.append({"MA_LK": ma_lk, "STT": str(stt), "MA_DICH_VU": code, "TEN_DICH_VU": name,
                         "MA_VAT_TU": supply, "SO_LUONG": "1", "MA_BAC_SI": self.doctor(),
                         "NGUOI_THUC_HIEN": self.doctor() if done else "", "NGAY_YL": f"{ordered:{_STAMP}}",
                         "NGAY_TH_YL": f"{ordered + timedelta(minutes=15):{_STAMP}}" if done else "",
                         "NGAY_KQ": f"{ordered + timedelta(minutes=75):{_STAMP}}" if done else ""})
        return rows

    def _results(self, ma_lk: str, start: datetime) -> list[Row]:
        rng, rows = self.rng, []
        numeric = rng.sample(self.pools["labs"], rng.randint(0, 3))
        text = rng.sample(self.pools["text_labs"], rng.randint(0, 2))
        for stt, lab in enumerate([*numeric, *text], start=1):
            if len(lab) == 7:
                service, index, name, unit, low, high, decimals = lab
                value = f"{rng.uniform(low, high):.{decimals}f}"
                value = value.replace(".", ",") if rng.random() < 0.1 else value
            else:
                service, index, name, choices = lab
                unit, value = "", rng.choice(choices)
            rows.append({"MA_LK": ma_lk, "STT": str(stt), "MA_DICH_VU": service, "MA_CHI_SO": index,
                         "TEN_CHI_SO": name, "GIA_TRI": value, "DON_VI_DO": unit,
                         "KET_LUAN": rng.choice(["", "Bình thường", "Tăng"]) if unit else "",
                         "NGAY_KQ": f"{start + timedelta(hours=2, minutes=stt):{_STAMP}}",
                         "MA_BS_DOC_KQ": self.doctor()})
        return rows

    def _notes(self, ma_lk: str, start: datetime, count: int) -> list[Row]:
        return [{"MA_LK": ma_lk, "STT": str(stt), "DIEN_BIEN_LS": self.rng.choice(self.pools["progress"]),
                 "GIAI_DOAN_BENH": "Ổn định" if self.rng.random() < 0.3 else "",
                 "HOI_CHAN": "", "PHAU_THUAT": "",
                 "THOI_DIEM_DBLS": f"{start + timedelta(hours=12 * stt):{_STAMP}}", "NGUOI_THUC_HIEN": self.doctor()}
                for stt in range(1, count + 1)]

    def _referral(self, ma_lk: str, summary: Row) -> Row:
        return {"MA_LK": ma_lk, "SO_CHUYENTUYEN": f"{self.digits(4)}/{summary['NGAY_VAO'][:4]}/GCT",
                "MA_NOI_DI": self.facility, "MA_NOI_DEN": summary["MA_NOI_DEN"], "MA_LYDO_CT": "1",
                "CHAN_DOAN_RV": summary["CHAN_DOAN_RV"], "DAU_HIEU_LS": "Khó thở tăng, SpO2 90% khí trời"}

    def _appointment(self, ma_lk: str, end: datetime, summary: Row) -> Row:
        return {"MA_LK": ma_lk, "SO_GIAYHEN_KL": f"{self.digits(5)}/GH",
                "NGAY_HEN_KL": f"{end + timedelta(days=self.rng.choice([7, 14, 30])):%Y%m%d}",
                "CHAN_DOAN_RV": summary["CHAN_DOAN_RV"], "MA_CSKCB": self.facility}


# -------------------------------------------------------------------------------------------- writing
def table_document(loai: str, rows: list[Row], *, legacy_4210: bool = False) -> bytes:
    """One inner table as UTF-8 XML: root / list / detail per row, or the fields under the root."""
    path = (layout(loai) or {"path": [f"CHI_TIEU_{loai}"]})["path"]
    renames = legacy_names(loai) if legacy_4210 else {}
    root = ET.Element(path[0])
    parents = [root] if len(path) == 1 else [ET.SubElement(ET.SubElement(root, path[1]), path[2]) for _ in rows]
    for parent, row in zip(parents, rows, strict=False):
        for name, value in row.items():
            ET.SubElement(parent, renames.get(name, name)).text = value
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


def envelope(facility: str, hosos: list[list[tuple[str, str]]], created: str) -> bytes:
    """The GIAMDINHHS file: each HOSO a list of (LOAIHOSO, NOIDUNGFILE text)."""
    root = ET.Element("GIAMDINHHS")
    ET.SubElement(ET.SubElement(root, "THONGTINDONVI"), "MACSKCB").text = facility
    info = ET.SubElement(root, "THONGTINHOSO")
    ET.SubElement(info, "NGAYLAP").text = created
    ET.SubElement(info, "SOLUONGHOSO").text = str(len(hosos))
    listing = ET.SubElement(info, "DANHSACHHOSO")
    for files in hosos:
        hoso = ET.SubElement(listing, "HOSO")
        for loai, content in files:
            item = ET.SubElement(hoso, "FILEHOSO")
            ET.SubElement(item, "LOAIHOSO").text = loai
            ET.SubElement(item, "NOIDUNGFILE").text = content
    ET.SubElement(root, "CHUKYDONVI")
    ET.indent(root)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


def _encode(loai: str, rows: list[Row], legacy_4210: bool) -> str:
    return base64.b64encode(table_document(loai, rows, legacy_4210=legacy_4210)).decode("ascii")


def hoso_files(episode: GeneratedEpisode, *, legacy_4210: bool = False) -> list[tuple[str, str]]:
    """One good episode as the (LOAIHOSO, NOIDUNGFILE) pairs of its HOSO, for ``envelope``."""
    return [(loai, _encode(loai, rows, legacy_4210)) for loai, rows in episode.tables.items()]


def _break(kind: str, episode: GeneratedEpisode, index: int, rng: random.Random,
           legacy_4210: bool) -> tuple[list[tuple[str, str]], BrokenHoso]:
    """A HOSO damaged in one way, and how the adapter must report it."""
    tables = {loai: [dict(row) for row in rows] for loai, rows in episode.tables.items()}
    key, field_name = f"MA_LK={episode.ma_lk}", ""
    damaged: dict[str, str] = {}
    if kind == "bad-base64":
        damaged["XML3"], field_name = "@@ không phải base64 @@", f"HOSO[{index}].XML3.NOIDUNGFILE"
    elif kind == "malformed-xml":
        whole = table_document("XML2", tables["XML2"], legacy_4210=legacy_4210)
        damaged["XML2"] = base64.b64encode(whole[: len(whole) // 2]).decode("ascii")
        field_name = f"HOSO[{index}].XML2.NOIDUNGFILE"
    elif kind == "missing-ma-lk":
        del tables["XML1"][0]["MA_LK"]
        key, field_name = f"HOSO[{index}]", "XML1.MA_LK"
    elif kind == "impossible-date":
        tables["XML1"][0]["NGAY_VAO"] = rng.choice(["202402310800", "202413050930"])
        field_name = "XML1.NGAY_VAO"
    else:
        raise ValueError(f"unknown broken kind {kind!r}; choose from {', '.join(BROKEN_KINDS)}")
    files = [(loai, damaged.get(loai) or _encode(loai, rows, legacy_4210)) for loai, rows in tables.items()]
    return files, BrokenHoso(kind, index, key, field_name)


def generate_file(seed: int | str, *, episodes: int = 3, legacy_4210: bool = False,
                  broken: Sequence[str] = (), facility: str | None = None) -> GeneratedFile:
    """One GIAMDINHHS file with ``episodes`` good HOSOs plus one broken HOSO per kind in ``broken``."""
    rng = random.Random(f"moh-xml:{seed}")
    facility = facility or rng.choice(table("synthetic")["facilities"])
    maker = _Maker(rng, facility)
    good = [maker.episode() for _ in range(episodes)]
    slots: list[Any] = [*good]
    for kind in broken:
        slots.insert(rng.randint(0, len(slots)), kind)
    hosos: list[list[tuple[str, str]]] = []
    damaged: list[BrokenHoso] = []
    for index, slot in enumerate(slots, start=1):
        if isinstance(slot, str):
            files, report = _break(slot, maker.episode(), index, rng, legacy_4210)
            hosos.append(files)
            damaged.append(report)
        else:
            hosos.append(hoso_files(slot, legacy_4210=legacy_4210))
    created = f"{datetime(2025, 7, 1) + timedelta(days=rng.randrange(180)):%Y%m%d}"
    return GeneratedFile(f"{facility}_{seed}.xml", facility, envelope(facility, hosos, created), good, damaged)


def generate_episodes(seed: int | str, count: int, *, facility: str) -> list[GeneratedEpisode]:
    """``count`` good episodes of one facility, without a file (MA_LK unique among them): for callers that
    assemble their own payloads, such as the backfill benchmark, which gives them people of a chosen risk."""
    maker = _Maker(random.Random(f"moh-xml-episodes:{seed}"), facility)
    return [maker.episode() for _ in range(count)]


def generate_files(count: int, *, seed: int, **options: Any) -> list[GeneratedFile]:
    return [generate_file(f"{seed}/{i}", **options) for i in range(count)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adapters.moh_xml.generator",
                                     description="Write realistic MoH XML (GIAMDINHHS) test files.")
    parser.add_argument("--files", type=int, default=1, help="number of files (default 1)")
    parser.add_argument("--episodes", type=int, default=3, help="good HOSOs per file (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same files")
    parser.add_argument("--out", type=Path, required=True, help="directory to write the files into")
    parser.add_argument("--legacy", action="store_true", help="use QĐ 4210 element names")
    parser.add_argument("--broken", default="", help=f"comma-separated kinds to inject: {','.join(BROKEN_KINDS)}")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.broken.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in BROKEN_KINDS]
    if unknown:
        parser.error(f"unknown --broken kind(s) {', '.join(unknown)}; choose from {', '.join(BROKEN_KINDS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    for made in generate_files(args.files, seed=args.seed, episodes=args.episodes, legacy_4210=args.legacy,
                               broken=kinds):
        target = args.out / made.name.replace("/", "-")
        target.write_bytes(made.payload)
        print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
