# -*- coding: utf-8 -*-
"""Importing _support links the collection under ansible_collections/ for every test."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import _support  # noqa: F401  pylint: disable=unused-import
