require ["vacation"];
# rule:[Out of office]
if true
{
	vacation :days 1 :subject "Out of office" :from "me@example.com" text:
I am on holiday until 1 July.
Urgent matters: deputy@example.com
.
;
}
