require "fileinto";
if exists ["From", "Date", "Subject"] { fileinto "complete"; }
if not exists "Date" { fileinto "no-date"; }
if exists "X-Spam-Flag" { fileinto "spam-flag"; }
if exists ["List-Id", "X-Does-Not-Exist"] { fileinto "never"; }
