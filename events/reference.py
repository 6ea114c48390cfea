"""Reference data shared by every member university: closed enumerations checked on every event."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class City(StrEnum):
    CHENGDU = "chengdu"
    CHONGQING = "chongqing"
    MIANYANG = "mianyang"
    DEYANG = "deyang"
    LESHAN = "leshan"
    NANCHONG = "nanchong"
    YIBIN = "yibin"
    LUZHOU = "luzhou"
    DAZHOU = "dazhou"
    WANZHOU = "wanzhou"
    FULING = "fuling"
    YONGCHUAN = "yongchuan"


# The Chengdu–Chongqing economic circle: every City above lies in one of its two provinces
SICHUAN, CHONGQING_MUNICIPALITY = "sichuan", "chongqing"
PROVINCE: dict[City, str] = {
    **{c: SICHUAN for c in (City.CHENGDU, City.MIANYANG, City.DEYANG, City.LESHAN, City.NANCHONG, City.YIBIN,
                             City.LUZHOU, City.DAZHOU)},
    **{c: CHONGQING_MUNICIPALITY for c in (City.CHONGQING, City.WANZHOU, City.FULING, City.YONGCHUAN)},
}
assert PROVINCE.keys() == set(City), "every city of the circle belongs to a province"


OUTSIDE_CIRCLE: Literal["outside_circle"] = "outside_circle"
# Where a hired graduate will work (recruitment.hired, v2): a city of the circle, or outside it
WorkLocation = City | Literal["outside_circle"]


class Industry(StrEnum):
    IT_SOFTWARE = "it_software"
    ELECTRONICS = "electronics"
    FINANCE = "finance"
    MANUFACTURING = "manufacturing"
    AUTOMOTIVE = "automotive"
    HEALTHCARE = "healthcare"
    EDUCATION = "education"
    LEGAL = "legal"
    PUBLIC_SECTOR = "public_sector"
    ENERGY = "energy"
    CONSTRUCTION = "construction"
    LOGISTICS = "logistics"
    AGRICULTURE = "agriculture"
    CULTURE_MEDIA = "culture_media"
    RETAIL = "retail"


class EmployerType(StrEnum):
    STATE_OWNED = "state_owned"
    PRIVATE = "private"
    FOREIGN = "foreign"
    PUBLIC_INSTITUTION = "public_institution"
    GOVERNMENT = "government"
    STARTUP = "startup"
    NON_PROFIT = "non_profit"


class Degree(StrEnum):
    ASSOCIATE = "associate"
    BACHELOR = "bachelor"
    MASTER = "master"
    DOCTORATE = "doctorate"


@dataclass(frozen=True)
class University:
    code: str
    name: str
    city: City


UNIVERSITIES: dict[str, University] = {
    u.code: u
    for u in (
        University("scu", "Sichuan University", City.CHENGDU),
        University("uestc", "University of Electronic Science and Technology of China", City.CHENGDU),
        University("swjtu", "Southwest Jiaotong University", City.CHENGDU),
        University("swufe", "Southwestern University of Finance and Economics", City.CHENGDU),
        University("cqu", "Chongqing University", City.CHONGQING),
        University("swu", "Southwest University", City.CHONGQING),
        University("swupl", "Southwest University of Political Science and Law", City.CHONGQING),
        University("cqmu", "Chongqing Medical University", City.CHONGQING),
    )
}
